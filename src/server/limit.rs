//! Per-caller rate limits (GCRA, `governor`): one budget for reads (lists, single reads, the
//! stream) and one for commands (revocations, reviews). Over budget → 429 with `Retry-After`.
//!
//! The key is the authenticated subject (JWT `sub`), so a caller cannot escape its budget by
//! opening connections, and one noisy caller does not slow the others.

use super::ApiError;
use crate::auth::Caller;
use crate::config::ApiConfig;
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
    /// Not rate limited per caller: the intake (its cost is bounded by its body and batch
    /// limits) and introspection (one primary-key lookup, called by the auth service for every
    /// request it serves, all under one credential).
    Unlimited,
}

impl Budget {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Budget::Read => "read",
            Budget::Command => "command",
            Budget::Unlimited => "unlimited",
        }
    }
}

/// Both budgets, keyed by caller. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Limits {
    read: Arc<DefaultKeyedRateLimiter<String>>,
    command: Arc<DefaultKeyedRateLimiter<String>>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Limits {
    /// Both budgets from `cfg`; a background task forgets idle callers every minute for as
    /// long as a clone of the limits lives (call inside a Tokio runtime).
    pub(crate) fn new(cfg: &ApiConfig) -> Self {
        let limits = Limits::unattended(cfg);
        let weak = (
            Arc::downgrade(&limits.read),
            Arc::downgrade(&limits.command),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (Some(read), Some(command)) = (weak.0.upgrade(), weak.1.upgrade()) else {
                    return;
                };
                read.retain_recent();
                command.retain_recent();
            }
        });
        limits
    }

    fn unattended(cfg: &ApiConfig) -> Self {
        Limits {
            read: Arc::new(RateLimiter::keyed(quota(
                cfg.read_per_minute,
                cfg.read_burst,
            ))),
            command: Arc::new(RateLimiter::keyed(quota(
                cfg.command_per_minute,
                cfg.command_burst,
            ))),
        }
    }

    /// Spends one unit of `budget` for `caller`, or answers 429 with `Retry-After` (seconds,
    /// rounded up).
    pub(crate) fn check(&self, budget: Budget, caller: &Caller) -> Result<(), ApiError> {
        let limiter = match budget {
            Budget::Read => &self.read,
            Budget::Command => &self.command,
            Budget::Unlimited => return Ok(()),
        };
        match limiter.check_key(&caller.subject) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let secs = secs.max(1);
                metrics::counter!("authtrail_api_rate_limited_total", "budget" => budget.label())
                    .increment(1);
                tracing::info!(subject = %caller.subject, budget = budget.label(), retry_after = secs, "rate limited");
                Err(ApiError::RateLimited {
                    budget: budget.label(),
                    retry_after: secs,
                })
            }
        }
    }
}
