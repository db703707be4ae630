//! Stopping: the process's shutdown signal, and how long stopping work may take.

use std::future::Future;
use std::time::Duration;

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; draining");
}

/// Set once Ctrl-C or SIGTERM arrived.
pub(crate) fn stop_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once `stop` is set.
pub(crate) async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs `work` to its end; once `stop` is set, gives it `grace` more (in-flight requests
/// drain, the projector commits the batch in hand), then exits the process anyway. A broker or
/// database that is gone must not hold a stopping process: nothing is lost by leaving, since a
/// batch that did not commit is applied again by the next worker.
pub(crate) async fn finish_within<T>(
    grace: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = stopped(stop) => {}
    }
    let grace_ms = grace.as_millis() as u64;
    tracing::info!(grace_ms, "shutdown: finishing in-flight work");
    match tokio::time::timeout(grace, work).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(
                grace_ms,
                "shutdown: still busy after the grace period (broker or database gone?); exiting \
                 without waiting (uncommitted work is applied again by the next worker)"
            );
            std::process::exit(1)
        }
    }
}
