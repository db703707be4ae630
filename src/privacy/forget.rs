//! `forget`: erase a person (GDPR art. 17) from a log that is never rewritten.
//!
//! In one PostgreSQL transaction: the projections get a new epoch (first, so that a projector
//! batch that already opened the person's events with the key fails its epoch guard instead of
//! writing them), the person's data keys are destroyed, and the person's rows are purged from the
//! read tables. The log keeps the ciphertext; without the key it is noise, so every later
//! replay, rebuild or as-of yields the person's events redacted. Recorded in `erasures`.

use super::Keyring;
use crate::replay::schema::qualified;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What one `forget` did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Erasure {
    pub id: Uuid,
    pub subject: String,
    /// Keys destroyed (0: the subject had none, e.g. it was forgotten before).
    pub keys_destroyed: i64,
    /// Rows purged, by table.
    pub purged: BTreeMap<String, u64>,
    pub erased_at: chrono::DateTime<chrono::Utc>,
    /// What was deleted from the input topics ([`super::topics::erase_inputs`]), when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<super::topics::InputsErased>,
}

/// Destroys `subject`'s keys and purges its rows from the live schema; `requested_by` names who
/// asked (`api:<admin>`, `cli:<user>`). Idempotent: forgetting again destroys nothing new but is
/// recorded too. The input topics are [`forget_everywhere`]'s.
pub async fn forget(
    pool: &PgPool,
    keys: Option<&Keyring>,
    subject: &str,
    requested_by: &str,
) -> Result<Erasure, sqlx::Error> {
    let mut tx = pool.begin().await?;
    crate::projector::sink::invalidate_caches(&mut tx).await?;
    let destroyed: Vec<i32> =
        sqlx::query_scalar("DELETE FROM subject_keys WHERE subject = $1 RETURNING generation")
            .bind(subject)
            .fetch_all(&mut *tx)
            .await?;
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await?;
    let purged = purge(&mut tx, &schema, subject).await?;
    let erased_at = chrono::Utc::now();
    let id = Uuid::new_v4();
    let generation = destroyed.iter().copied().max();
    sqlx::query(
        "INSERT INTO erasures (id, subject, generation, keys, requested_by, erased_at, purged)
         VALUES ($1, $2, COALESCE($3, (SELECT max(generation) FROM erasures WHERE subject = $2), 0),
                 $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(subject)
    .bind(generation)
    .bind(destroyed.len() as i32)
    .bind(requested_by)
    .bind(erased_at)
    .bind(sqlx::types::Json(&purged))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(k) = keys {
        k.evict(subject);
    }
    metrics::counter!("authtrail_privacy_erasures_total").increment(1);
    tracing::info!(%id, keys = destroyed.len(), rows = purged.values().sum::<u64>(), "subject forgotten");
    Ok(Erasure {
        id,
        subject: subject.to_owned(),
        keys_destroyed: destroyed.len() as i64,
        purged,
        erased_at,
        inputs: None,
    })
}

/// [`forget`], then the person's records in the input topics
/// ([`super::topics::erase_inputs`]). The database part stands even when the topics part fails
/// (the error is returned; asking again finishes it).
pub async fn forget_everywhere(
    config: &crate::config::Config,
    pool: &PgPool,
    keys: Option<&Keyring>,
    subject: &str,
    requested_by: &str,
) -> anyhow::Result<Erasure> {
    let mut erasure = forget(pool, keys, subject, requested_by).await?;
    erasure.inputs = Some(super::topics::erase_inputs(config, subject).await?);
    Ok(erasure)
}

/// Deletes `subject`'s rows from the read tables of `schema`, and the addresses it used from
/// alerts about networks (which name no user). Used by `forget` on the live schema and by a
/// rebuild's swap on the rebuilt one (for subjects forgotten while it was built).
pub(crate) async fn purge(
    conn: &mut PgConnection,
    schema: &str,
    subject: &str,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let t = |name: &str| qualified(schema, name);
    let ips: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT ip FROM {} WHERE user_id = $1 AND ip IS NOT NULL
         UNION SELECT ip FROM {} WHERE user_id = $1 AND ip IS NOT NULL",
        t("login_history"),
        t("sessions")
    ))
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    let statements = [
        (
            "security_event_reviews",
            format!(
                "DELETE FROM {} WHERE security_event_id IN
                   (SELECT id FROM {} WHERE user_id = $1 UNION SELECT id FROM {} WHERE user_id = $1)",
                t("security_event_reviews"),
                t("security_events"),
                t("alerts")
            ),
        ),
        ("security_events", format!("DELETE FROM {} WHERE user_id = $1", t("security_events"))),
        ("sessions", format!("DELETE FROM {} WHERE user_id = $1", t("sessions"))),
        ("login_history", format!("DELETE FROM {} WHERE user_id = $1", t("login_history"))),
        ("trusted_devices", format!("DELETE FROM {} WHERE user_id = $1", t("trusted_devices"))),
        ("user_profiles", format!("DELETE FROM {} WHERE user_id = $1", t("user_profiles"))),
        ("alert_signals", format!("DELETE FROM {} WHERE user_id = $1", t("alert_signals"))),
        ("alerts", format!("DELETE FROM {} WHERE user_id = $1", t("alerts"))),
        (
            "dead_letters",
            format!(
                "DELETE FROM {} WHERE message_key = convert_to($1, 'UTF8')",
                t("dead_letters")
            ),
        ),
    ];
    let mut purged = BTreeMap::new();
    for (table, sql) in statements {
        let n = sqlx::query(&sql)
            .bind(subject)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        *purged.entry(table.to_owned()).or_insert(0) += n;
    }
    if !ips.is_empty() {
        for table in ["alert_signals", "alerts"] {
            let n = sqlx::query(&format!(
                "UPDATE {} SET ip = NULL WHERE ip = ANY($1)",
                t(table)
            ))
            .bind(&ips)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            *purged
                .entry(format!("{table} (address removed)"))
                .or_insert(0) += n;
        }
    }
    Ok(purged)
}

/// The subjects forgotten at or after `since` (for a rebuild's swap).
pub(crate) async fn forgotten_since(
    conn: &mut PgConnection,
    live: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT DISTINCT subject FROM {} WHERE erased_at >= $1 ORDER BY 1",
        qualified(live, "erasures")
    ))
    .bind(since)
    .fetch_all(conn)
    .await
}
