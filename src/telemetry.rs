//! Logging (`tracing`, text or JSON, to stderr) and the process-wide Prometheus recorder.
//!
//! Nothing logged anywhere carries a token, password or one-time code: events are logged by id
//! and type only.

use crate::config::{LogConfig, LogFormat};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides `log.filter`. Safe to call twice.
pub(crate) fn init_logging(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `value`'s `Display` text with control and format characters escaped (`\u{a}`, `\u{202e}`):
/// log a value a request controls (an error naming a parameter, a problem's detail) as
/// `field = %escaped(&value)`, so that a CR/LF, an ANSI escape or a bidi override in it cannot
/// forge a log line or hide text. Plain strings are logged with `?` (Debug escapes the same).
pub(crate) fn escaped<T: std::fmt::Display + ?Sized>(value: &T) -> Escaped<'_, T> {
    Escaped(value)
}

/// See [`escaped`].
pub(crate) struct Escaped<'a, T: ?Sized>(&'a T);

impl<T: std::fmt::Display + ?Sized> std::fmt::Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Passes text through, escaping what [`authtrail_events::parse::is_refused_char`] names.
        struct Escaping<'a, 'b>(&'a mut std::fmt::Formatter<'b>);
        impl std::fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                for c in s.chars() {
                    if authtrail_events::parse::is_refused_char(c) {
                        write!(self.0, "{}", c.escape_unicode())?;
                    } else {
                        self.0.write_char(c)?;
                    }
                }
                Ok(())
            }
        }
        use std::fmt::Write;
        write!(Escaping(f), "{}", self.0)
    }
}

/// The process-wide Prometheus handle; installs the recorder on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let latency = &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), latency)
            .expect("static buckets are valid");
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (e.g. a test harness): keep ours local.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}
