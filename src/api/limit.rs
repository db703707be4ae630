//! Per-caller rate limits (GCRA, `governor`): one budget for reads (lists, single reads, the
//! stream) and one for commands (revocations, reviews). Over budget → 429 with `Retry-After`.
//!
//! The key is the authenticated subject (JWT `sub`), so a caller cannot escape its budget by
//! opening connections, and one noisy caller does not slow the others.

use crate::auth::Caller;
use crate::config::ApiConfig;
use crate::problem::Problem;
use axum::http::{header, HeaderValue, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Read,
    Command,
}

impl Budget {
    fn label(self) -> &'static str {
        match self {
            Budget::Read => "read",
            Budget::Command => "command",
        }
    }
}

/// Both budgets, keyed by caller. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    read: Arc<DefaultKeyedRateLimiter<String>>,
    command: Arc<DefaultKeyedRateLimiter<String>>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Limits {
    pub fn new(cfg: &ApiConfig) -> Self {
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
    pub fn check(&self, budget: Budget, caller: &Caller) -> Result<(), Problem> {
        let limiter = match budget {
            Budget::Read => &self.read,
            Budget::Command => &self.command,
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
                Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    format!(
                        "the {} rate limit for this caller is exhausted; retry after {secs} s",
                        budget.label()
                    ),
                )
                .with("retry_after", secs)
                .with_header_value(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&secs.to_string()).expect("digits"),
                ))
            }
        }
    }

    /// Forgets callers whose budgets are full again (bounds memory).
    pub fn retain_recent(&self) {
        self.read.retain_recent();
        self.command.retain_recent();
    }
}
