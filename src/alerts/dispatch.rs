//! The dispatcher's loop: hold the lock, reconcile, then publish what is undelivered and apply
//! the policy, woken by the projector's `NOTIFY` or every [`POLL`].

use super::{policy, reconcile, Delivered, Dispatcher, EVENT_TYPE, SOURCE};
use crate::kafka::CONTENT_TYPE;
use crate::projector::NOTIFY_CHANNEL;
use anyhow::Context;
use authtrail_projections::detect::Alert;
use chrono::Utc;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

/// Alerts per produce batch (and policy rows per round).
const BATCH: i64 = 100;
/// A pass runs at least this often, notification or not.
const POLL: Duration = Duration::from_secs(1);
/// How often a process without the lock tries again.
const LOCK_RETRY: Duration = Duration::from_secs(1);
/// The session advisory lock only the dispatching process holds ("authtrail.alerts.dispatch").
const LOCK_KEY: i64 = 0x6175_7468_7472_6c31;

/// The alert's digest as the policy handles it: it changes whenever the alert grows.
const DIGEST: &str =
    "md5(concat_ws('/', a.count, extract(epoch FROM a.last_seen), a.metadata::text))";

impl Dispatcher {
    /// Dispatches until `shutdown` resolves (a batch in hand is finished first). Errors of the
    /// broker or the database are logged and retried with backoff, reconciling again each time;
    /// while another process holds the lock, this one waits.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(200);
        loop {
            let conn = tokio::select! {
                _ = &mut shutdown => break,
                c = self.lock() => c,
            };
            match self.serve(conn, &mut shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!("authtrail_alert_dispatch_errors_total").increment(1);
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "alert dispatcher failed; it will reconcile and go on");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        metrics::gauge!("authtrail_alert_dispatcher_active").set(0.0);
        tracing::info!("alert dispatcher stopped");
        Ok(())
    }

    /// A connection of its own holding the dispatch lock; waits while another process has it.
    async fn lock(&self) -> PgConnection {
        let mut said = false;
        loop {
            match self.try_lock().await {
                Ok(Some(conn)) => return conn,
                Ok(None) if !said => {
                    said = true;
                    tracing::info!("another process dispatches alerts; waiting for its lock");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "alert dispatcher: taking the lock"),
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    async fn try_lock(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if got {
            return Ok(Some(conn));
        }
        let _ = conn.close().await;
        Ok(None)
    }

    /// With the lock held on `conn`: reconcile, then pass after pass until `shutdown`. Returns
    /// `Ok` only when stopped; dropping `conn` releases the lock.
    async fn serve(
        &self,
        mut conn: PgConnection,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        backoff: &mut Duration,
    ) -> anyhow::Result<()> {
        // A pool of its own: the listener keeps its connection, which the server's pool (sized
        // for requests and the projector) should not lose.
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let recorded = self.reconcile(&mut conn).await?;
        metrics::gauge!("authtrail_alert_dispatcher_active").set(1.0);
        tracing::info!(topic = %self.alerts.topic, reconciled = recorded, policies = self.policy.len(), "alert dispatcher started");
        *backoff = Duration::from_millis(200);
        loop {
            self.pass(&mut conn).await?;
            tokio::select! {
                _ = &mut *shutdown => return Ok(()),
                woken = tokio::time::timeout(POLL, listener.recv()) => {
                    if let Ok(Err(e)) = woken {
                        return Err(e).context("listening for the projector's notifications");
                    }
                }
            }
            // One pass covers every notification that has arrived meanwhile.
            while listener.next_buffered().is_some() {}
        }
    }

    /// Records what the alerts topic holds beyond the recorded offsets (module `reconcile`).
    async fn reconcile(&self, conn: &mut PgConnection) -> anyhow::Result<usize> {
        let found = reconcile::unrecorded(conn, &self.alerts)
            .await
            .context("reading the alerts topic past the recorded deliveries")?;
        if !found.is_empty() {
            tracing::warn!(
                alerts = found.len(),
                "alerts on the topic that were not recorded (a dispatcher stopped between publishing and recording): recorded now, not published again"
            );
            metrics::counter!("authtrail_alerts_reconciled_total").increment(found.len() as u64);
            self.record(conn, &found).await?;
        }
        Ok(found.len())
    }

    /// Publishes every undelivered alert (oldest first, in batches), then applies the policy.
    async fn pass(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let batch: Vec<Json<Alert>> = sqlx::query_scalar(
                "SELECT row_to_json(a) FROM alerts a
                 LEFT JOIN alert_deliveries d ON d.alert_id = a.id
                 WHERE d.alert_id IS NULL
                 ORDER BY a.first_seen, a.id LIMIT $1",
            )
            .bind(BATCH)
            .fetch_all(&mut *conn)
            .await?;
            let n = batch.len() as i64;
            if n > 0 {
                let batch: Vec<Alert> = batch.into_iter().map(|a| a.0).collect();
                self.deliver(conn, &batch).await?;
            }
            if n < BATCH {
                break;
            }
        }
        if !self.policy.is_empty() {
            self.respond(conn).await?;
        }
        metrics::histogram!("authtrail_alert_dispatch_pass_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Produces `batch`, waits for every acknowledgement, then records the batch in one
    /// statement. When any message failed nothing is recorded: the error makes the dispatcher
    /// reconcile, which records what landed (a message can land although its delivery failed).
    async fn deliver(&self, conn: &mut PgConnection, batch: &[Alert]) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(batch.len());
        let mut failure: Option<anyhow::Error> = None;
        for alert in batch {
            let payload = if self.without_personal {
                cloud_event(&without_personal(alert))
            } else {
                cloud_event(alert)
            };
            let mut record = FutureRecord::to(&self.alerts.topic)
                .key(alert.subject.as_bytes())
                .payload(&payload);
            if self.content_type_header {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some(CONTENT_TYPE),
                }));
            }
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((alert, delivery)),
                Err((e, _)) => {
                    // Stop here, but still wait for what is in flight.
                    failure = Some(e.into());
                    break;
                }
            }
        }
        let mut delivered = Vec::with_capacity(pending.len());
        for (alert, delivery) in pending {
            match delivery.await {
                Ok(Ok(d)) => delivered.push((
                    Delivered {
                        alert_id: alert.id,
                        partition: d.partition,
                        offset: d.offset,
                    },
                    alert.rule.clone(),
                )),
                Ok(Err((e, _))) => failure = Some(e.into()),
                Err(_) => failure = Some(anyhow::anyhow!("the alerts producer shut down")),
            }
        }
        if let Some(e) = failure {
            return Err(e.context(format!("publishing to {}", self.alerts.topic)));
        }
        self.record(conn, &delivered).await?;
        for (d, rule) in &delivered {
            metrics::counter!("authtrail_alerts_published_total", "rule" => rule.clone())
                .increment(1);
            tracing::info!(alert_id = %d.alert_id, %rule, partition = d.partition, offset = d.offset, "alert published");
        }
        Ok(())
    }

    /// Records deliveries (with the action configured for each one's rule), all or none.
    async fn record(
        &self,
        conn: &mut PgConnection,
        delivered: &[(Delivered, String)],
    ) -> Result<(), sqlx::Error> {
        let ids: Vec<uuid::Uuid> = delivered.iter().map(|(d, _)| d.alert_id).collect();
        let partitions: Vec<i32> = delivered.iter().map(|(d, _)| d.partition).collect();
        let offsets: Vec<i64> = delivered.iter().map(|(d, _)| d.offset).collect();
        let policies: Vec<Option<&str>> = delivered
            .iter()
            .map(|(_, rule)| self.action(rule).map(|a| a.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO alert_deliveries (alert_id, topic, partition, \"offset\", policy)
             SELECT d.id, $1, d.p, d.o, d.policy
             FROM UNNEST($2::uuid[], $3::int[], $4::bigint[], $5::text[]) AS d(id, p, o, policy)
             ON CONFLICT (alert_id) DO NOTHING",
        )
        .bind(&self.alerts.topic)
        .bind(&ids)
        .bind(&partitions)
        .bind(&offsets)
        .bind(&policies)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Applies the policy to delivered alerts it has not handled in their present state (new,
    /// or grown since): appends the events for targets not acted on yet, then records them.
    async fn respond(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        loop {
            let rows: Vec<(Json<Alert>, Vec<String>, String)> = sqlx::query_as(&format!(
                "SELECT row_to_json(a), d.policy_targets, {DIGEST}
                 FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                 WHERE d.policy IS NOT NULL AND d.policy_digest IS DISTINCT FROM {DIGEST}
                 ORDER BY d.delivered_at, d.alert_id LIMIT $1"
            ))
            .bind(BATCH)
            .fetch_all(&mut *conn)
            .await?;
            let n = rows.len() as i64;
            for (Json(alert), done, digest) in rows {
                let mut acted: BTreeSet<String> = done.into_iter().collect();
                if let Some(action) = self.action(&alert.rule) {
                    let mut events = vec![];
                    for target in policy::targets(action, &alert) {
                        let key = target.key();
                        if acted.contains(&key) {
                            continue;
                        }
                        // Never before the evidence (a publisher's clock may run ahead).
                        let at = Utc::now().max(alert.last_seen);
                        match policy::events(action, &alert, &target, at) {
                            Some(e) => events.extend(e),
                            None => {
                                tracing::warn!(alert_id = %alert.id, target = %key, "policy: the target cannot be named in an event; skipped")
                            }
                        }
                        tracing::info!(alert_id = %alert.id, rule = %alert.rule, action = action.as_str(), target = %key, "policy acts");
                        metrics::counter!("authtrail_alert_policy_actions_total", "action" => action.as_str())
                            .increment(1);
                        acted.insert(key);
                    }
                    if !events.is_empty() {
                        self.publisher
                            .publish_all(&events)
                            .await
                            .context("appending the policy's events")?;
                    }
                }
                sqlx::query(
                    "UPDATE alert_deliveries SET policy_digest = $2, policy_targets = $3
                     WHERE alert_id = $1",
                )
                .bind(alert.id)
                .bind(&digest)
                .bind(acted.into_iter().collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }
}

/// The alert as published when personal data is encrypted: rule, severity, subject, user id,
/// counts, times and evidence ids; no address, description or metadata (those name addresses,
/// cities, user agents and identifiers), which the query API serves and `forget` can erase.
fn without_personal(alert: &Alert) -> Alert {
    Alert {
        ip: None,
        description: alert.title.clone(),
        metadata: json!({ "details": format!("/api/v1/admin/alerts/{}", alert.id) }),
        ..alert.clone()
    }
}

/// The alert as a CloudEvent, structured mode.
fn cloud_event(alert: &Alert) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0",
        "id": alert.id,
        "source": SOURCE,
        "type": EVENT_TYPE,
        "time": alert.last_seen,
        "subject": alert.user_id.as_deref().unwrap_or(&alert.subject),
        "datacontenttype": "application/json",
        "data": alert,
    }))
    .expect("an alert serialises")
}
