//! Acting on alerts: the dispatcher publishes every alert once to the alerts topic and applies
//! the response policy (`[alerts]`).
//!
//! The projector writes `alerts` (a projection: rebuilt from the log at will). The dispatcher
//! ([`Dispatcher::run`], inside `authtrail serve`) publishes each alert as a CloudEvent
//! (structured mode, type [`EVENT_TYPE`], source [`SOURCE`], id = the alert's id, subject = its
//! account or else its subject, data = the alert row; message key = the alert's subject) and
//! records where it landed in `alert_deliveries`, a table that is no projection and survives
//! rebuilds. The contract: **an alert appears on the topic once**, however often the projection
//! is rebuilt or the dispatcher restarts —
//!
//! - published alerts are recorded (`alert_deliveries`, keyed by the alert id, which is stable
//!   across rebuilds: it derives from the rule, the subject and the first evidence event);
//! - one dispatcher works at a time across processes (a session advisory lock on a connection
//!   of its own, which also carries its statements: lose the connection, lose the lock and stop);
//! - before publishing, a dispatcher reconciles: what is on the topic past the recorded offsets
//!   (a crash between the broker's acknowledgement and the record) is recorded, not published
//!   again ([`reconcile`]).
//!
//! An alert is published when first seen; when it grows later (more evidence) it is not
//! published again — consumers wanting the latest state read the API.
//!
//! The response policy ([`policy`]): for a rule with an action, once its alert is published, the
//! dispatcher appends the action's events (and an `admin.action` record) through the normal
//! [`Publisher`] to the events topic. When the alert grows after that, the new targets (say, a
//! newly compromised session) are acted on too; the targets acted on are recorded with the
//! delivery, and event ids derive from (alert, action, target), so a repeat after a crash is
//! deduplicated by the projection. The policy acts only on alerts delivered while their rule had
//! an action configured: configuring one later does not act on the past.

mod dispatch;
mod policy;
mod reconcile;

use crate::config::{Config, KafkaConfig, PolicyAction};
use crate::kafka::Publisher;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// The CloudEvents `type` of a published alert.
pub const EVENT_TYPE: &str = "authtrail.alert";
/// The CloudEvents `source` of a published alert.
pub const SOURCE: &str = "/authtrail/detection";

/// Where a published alert landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) alert_id: Uuid,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// The alert dispatcher (see the module docs).
pub struct Dispatcher {
    pool: PgPool,
    /// Appends the policy's events to the events topic.
    publisher: Arc<Publisher>,
    /// Produces to the alerts topic (idempotent, `acks=all`).
    producer: FutureProducer,
    /// The client settings of the alerts topic.
    alerts: KafkaConfig,
    policy: BTreeMap<String, PolicyAction>,
    content_type_header: bool,
    /// With `privacy.encrypt`: alerts go to the topic without what could identify or locate a
    /// person (addresses, cities, user agents, identifiers in the description and metadata),
    /// because a topic cannot be erased; the whole alert is at `GET /api/v1/admin/alerts/{id}`.
    without_personal: bool,
}

/// The client settings of the alerts topic: the events topic's, with `alerts.topic`.
pub fn topic_config(config: &Config) -> KafkaConfig {
    KafkaConfig {
        topic: config.alerts.topic.clone(),
        ..config.kafka.clone()
    }
}

impl Dispatcher {
    /// Creates the producer (does not contact the broker: `ensure_topic` the alerts topic first,
    /// see [`topic_config`]).
    pub fn new(
        config: &Config,
        pool: PgPool,
        publisher: Arc<Publisher>,
    ) -> anyhow::Result<Dispatcher> {
        let alerts = topic_config(config);
        Ok(Dispatcher {
            pool,
            publisher,
            producer: crate::kafka::producer_config(&alerts).create()?,
            policy: config.alerts.policy.clone(),
            content_type_header: alerts.content_type_header,
            without_personal: config.privacy.encrypt,
            alerts,
        })
    }

    /// The action configured for `rule`.
    fn action(&self, rule: &str) -> Option<PolicyAction> {
        self.policy.get(rule).copied()
    }
}
