//! Per-caller rate limits (GCRA, `governor`): a budget for reads (lists, single reads, the
//! stream), one for commands (revocations, reviews), one for the intake and one for
//! introspection. Over budget → 429 with `Retry-After`.
//!
//! The key is the authenticated subject (JWT `sub`, or the API key's fingerprint), so a caller
//! cannot escape its budget by opening connections, and one noisy caller does not slow the
//! others.

use super::ApiError;
use crate::auth::Caller;
use crate::config::Config;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// Lists, single reads, the event stream.
    Read,
    /// Revocations and reviews (each appends events).
    Command,
    /// `POST /v1/events` (`ingest.requests_per_minute`; each request is further bounded by
    /// the body and batch limits).
    Intake,
    /// Introspection (`api.introspect_per_minute`): one primary-key lookup, called by the auth
    /// service for every request it serves, all under one credential, so apart from the read
    /// budget and generous.
    Introspect,
}

impl Budget {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Budget::Read => "read",
            Budget::Command => "command",
            Budget::Intake => "intake",
            Budget::Introspect => "introspect",
        }
    }
}

type Limiter = Arc<DefaultKeyedRateLimiter<String>>;

/// Every budget, keyed by caller. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Limits {
    read: Limiter,
    command: Limiter,
    intake: Limiter,
    introspect: Limiter,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Limits {
    /// Every budget from `cfg`; a background task forgets idle callers every minute for as
    /// long as a clone of the limits lives (call inside a Tokio runtime).
    pub(crate) fn new(cfg: &Config) -> Self {
        let limits = Limits::unattended(cfg);
        let weak: Vec<_> = limits.all().iter().map(|l| Arc::downgrade(l)).collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                for limiter in &weak {
                    let Some(limiter) = limiter.upgrade() else {
                        return;
                    };
                    limiter.retain_recent();
                }
            }
        });
        limits
    }

    fn unattended(cfg: &Config) -> Self {
        let keyed = |per_minute, burst| Arc::new(RateLimiter::keyed(quota(per_minute, burst)));
        let (api, ingest) = (&cfg.api, &cfg.ingest);
        Limits {
            read: keyed(api.read_per_minute, api.read_burst),
            command: keyed(api.command_per_minute, api.command_burst),
            intake: keyed(ingest.requests_per_minute, ingest.requests_burst),
            introspect: keyed(api.introspect_per_minute, api.introspect_burst),
        }
    }

    fn all(&self) -> [&Limiter; 4] {
        [&self.read, &self.command, &self.intake, &self.introspect]
    }

    /// Spends one unit of `budget` for `caller`, or answers 429 with `Retry-After` (seconds,
    /// rounded up).
    pub(crate) fn check(&self, budget: Budget, caller: &Caller) -> Result<(), ApiError> {
        let limiter = match budget {
            Budget::Read => &self.read,
            Budget::Command => &self.command,
            Budget::Intake => &self.intake,
            Budget::Introspect => &self.introspect,
        };
        match limiter.check_key(&caller.subject) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let secs = secs.max(1);
                metrics::counter!("authtrail_api_rate_limited_total", "budget" => budget.label())
                    .increment(1);
                tracing::info!(subject = ?caller.subject, budget = budget.label(), retry_after = secs, "rate limited");
                Err(ApiError::RateLimited {
                    budget: budget.label(),
                    retry_after: secs,
                })
            }
        }
    }
}
