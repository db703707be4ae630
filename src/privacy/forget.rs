//! `forget`: erase a person (GDPR art. 17) from a log that is never rewritten.
//!
//! In one PostgreSQL transaction: the projections get a new epoch (first, so that a projector
//! batch that already opened the person's events with the key fails its epoch guard instead of
//! writing them), the person's data keys are destroyed, and the person's rows are purged from the
//! read tables. The log keeps the ciphertext; without the key it is noise, so every later
//! replay, rebuild or as-of yields the person's events redacted. Recorded in `erasures`.

use super::Keyring;
use crate::db::qualified;
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
    // A rebuild's swap locks the live checkpoints EXCLUSIVE: this waits for a swap in progress
    // (whose tables it then purges) or makes the swap wait, which then purges what it brings.
    sqlx::query("LOCK TABLE projection_checkpoints IN ROW SHARE MODE")
        .execute(&mut *tx)
        .await?;
    let live: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await?;
    // Every schema holding projection tables: the live one, rebuilds in progress, the tables a
    // swap replaced (`authtrail_old_*`), as-of builds.
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = 'projection_epochs' AND c.relkind = 'r'
         ORDER BY n.nspname <> $1, n.nspname",
    )
    .bind(&live)
    .fetch_all(&mut *tx)
    .await?;
    // New epochs first: a batch that already opened the person's events fails its guard.
    for schema in &schemas {
        sqlx::query(&format!(
            "UPDATE {} SET epoch = gen_random_uuid()",
            qualified(schema, "projection_epochs")
        ))
        .execute(&mut *tx)
        .await?;
    }
    let destroyed: Vec<i32> =
        sqlx::query_scalar("DELETE FROM subject_keys WHERE subject = $1 RETURNING generation")
            .bind(subject)
            .fetch_all(&mut *tx)
            .await?;
    let mut purged = BTreeMap::new();
    for schema in &schemas {
        for (table, n) in purge(&mut tx, schema, subject).await? {
            let name = if *schema == live {
                table
            } else {
                format!("{schema}.{table}")
            };
            *purged.entry(name).or_insert(0) += n;
        }
    }
    let id = Uuid::new_v4();
    let generation = destroyed.iter().copied().max();
    // The database's clock, as a rebuild's swap compares it with its own migrations' time.
    let erased_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "INSERT INTO erasures (id, subject, generation, keys, requested_by, purged)
         VALUES ($1, $2, COALESCE($3, (SELECT max(generation) FROM erasures WHERE subject = $2), 0),
                 $4, $5, $6)
         RETURNING erased_at",
    )
    .bind(id)
    .bind(subject)
    .bind(generation)
    .bind(destroyed.len() as i32)
    .bind(requested_by)
    .bind(sqlx::types::Json(&purged))
    .fetch_one(&mut *tx)
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
    // A schema made by an older version may lack some tables.
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let has = |name: &str| present.iter().any(|p| p == name);
    if !["login_history", "sessions", "security_events", "alerts"]
        .iter()
        .all(|n| has(n))
    {
        return Ok(BTreeMap::new());
    }
    // Failed logins where no account matched an identifier the person used (`user_id` empty).
    let identifiers: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT lower(identifier) FROM {} WHERE user_id = $1 AND identifier IS NOT NULL",
        t("login_history")
    ))
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
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
    if !identifiers.is_empty() {
        let n = sqlx::query(&format!(
            "DELETE FROM {} WHERE user_id IS NULL AND lower(identifier) = ANY($1)",
            t("login_history")
        ))
        .bind(&identifiers)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        purged.insert(
            "login_history (unknown-user attempts with the person's identifiers)".to_owned(),
            n,
        );
    }
    for (table, sql) in statements {
        if !has(table) {
            continue;
        }
        let n = sqlx::query(&sql)
            .bind(subject)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        *purged.entry(table.to_owned()).or_insert(0) += n;
    }
    // Rows are chosen by whom they name (the user id, an identifier), not by address: an
    // address the person also used (a shared network, or an attacker's after a takeover) stays
    // in the evidence about other accounts.
    let mut naming: Vec<String> = vec![subject.to_lowercase()];
    naming.extend(identifiers.iter().cloned());
    let mut needles = naming.clone();
    needles.extend(ips.iter().map(|s| s.to_lowercase()));
    for table in ["alerts", "alert_signals"].into_iter().filter(|t| has(t)) {
        let n = scrub_table(conn, &t(table), table, &naming, &needles, &ips).await?;
        if n > 0 {
            purged.insert(format!("{table} (scrubbed)"), n);
        }
    }
    Ok(purged)
}

/// Alerts and signals about other subjects (a network, several accounts) that name the person
/// (`naming`: user id and identifiers, lower case) have `needles` (those and the person's
/// addresses) scrubbed from their text, metadata and address column. Returns the rows changed.
async fn scrub_table(
    conn: &mut PgConnection,
    qualified_name: &str,
    table: &str,
    naming: &[String],
    needles: &[String],
    ips: &[String],
) -> Result<u64, sqlx::Error> {
    let (text_col, json_col) = if table == "alerts" {
        ("description", "metadata")
    } else {
        ("key", "detail")
    };
    let rows: Vec<(String, Option<String>, Option<String>, serde_json::Value)> =
        sqlx::query_as(&format!(
            "SELECT ctid::text, ip, {text_col}, {json_col} FROM {qualified_name}
             WHERE EXISTS (
                 SELECT 1 FROM unnest($1::text[]) n
                 WHERE strpos(lower({json_col}::text), n) > 0
                    OR strpos(lower(coalesce({text_col}, '')), n) > 0)"
        ))
        .bind(naming)
        .fetch_all(&mut *conn)
        .await?;
    let mut changed = 0;
    for (ctid, ip, text, mut json) in rows {
        // The pre-filter matched substrings; only whole names count.
        let named = |t: &str| {
            let t = t.to_lowercase();
            naming.iter().any(|n| find_word(&t, n, 0).is_some())
        };
        if !named(&json.to_string()) && !text.as_deref().is_some_and(named) {
            continue;
        }
        changed += 1;
        scrub(&mut json, needles);
        let text = text.map(|t| scrub_text(&t, needles));
        let ip = ip.filter(|i| !ips.contains(i));
        sqlx::query(&format!(
            "UPDATE {qualified_name} SET ip = $2, {text_col} = $3, {json_col} = $4 WHERE ctid = $1::tid"
        ))
        .bind(&ctid)
        .bind(ip)
        .bind(text)
        .bind(&json)
        .execute(&mut *conn)
        .await?;
    }
    Ok(changed)
}

/// Removes `needles` (lower case) from `v`: array elements that are or contain one are dropped,
/// object members that are one become `"[redacted]"`, text containing one has it replaced.
fn scrub(v: &mut serde_json::Value, needles: &[String]) {
    use serde_json::Value;
    fn names(v: &Value, needles: &[String]) -> bool {
        match v {
            Value::String(s) => {
                let s = s.to_lowercase();
                needles.iter().any(|n| find_word(&s, n, 0).is_some())
            }
            Value::Array(a) => a.iter().any(|x| names(x, needles)),
            Value::Object(o) => o.values().any(|x| names(x, needles)),
            _ => false,
        }
    }
    match v {
        Value::Array(a) => {
            a.retain(|x| !names(x, needles));
        }
        Value::Object(o) => {
            for x in o.values_mut() {
                match x {
                    Value::String(s) => *s = scrub_text(s, needles),
                    other => scrub(other, needles),
                }
            }
        }
        Value::String(s) => *s = scrub_text(s, needles),
        _ => {}
    }
}

/// `text` with every (case-insensitive) whole occurrence of a needle replaced by `[redacted]`.
fn scrub_text(text: &str, needles: &[String]) -> String {
    let mut out = text.to_owned();
    for n in needles.iter().filter(|n| !n.is_empty()) {
        let mut from = 0;
        loop {
            let lower = out.to_lowercase();
            if lower.len() != out.len() {
                // Lower-casing changed byte offsets (non-ASCII): drop the whole text if it
                // names the person at all.
                if find_word(&lower, n, 0).is_some() {
                    return "[redacted]".to_owned();
                }
                break;
            }
            match find_word(&lower, n, from) {
                Some(i) => {
                    out.replace_range(i..i + n.len(), "[redacted]");
                    from = i + "[redacted]".len();
                }
                None => break,
            }
        }
    }
    out
}

/// Where `needle` occurs in `hay` at or after `from` as a whole word: not preceded or followed
/// by a letter or digit (so `u1` is not found in `u12`, nor `1.2.3.4` in `1.2.3.45`).
fn find_word(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(i) = hay.get(start..)?.find(needle) {
        let at = start + i;
        let end = at + needle.len();
        let before = hay[..at].chars().next_back();
        let after = hay[end..].chars().next();
        if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
            return Some(at);
        }
        start = at + needle.len().max(1);
    }
    None
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

#[cfg(test)]
mod tests {
    use super::{scrub, scrub_text};
    use serde_json::json;

    #[test]
    fn scrubbing_drops_the_persons_entries_and_keeps_the_rest() {
        let needles = vec!["alice".to_owned(), "198.51.100.7".to_owned()];
        let mut v = json!({
            "accounts": ["alice", "bob"],
            "addresses": ["198.51.100.7", "203.0.113.1"],
            "latest": {"ip": "198.51.100.7", "key": "Alice"},
            "compromised": [{"account": "alice", "ip": "198.51.100.7"}, {"account": "bob"}],
            "note": "seen from 198.51.100.7 twice"
        });
        scrub(&mut v, &needles);
        assert_eq!(
            v,
            json!({
                "accounts": ["bob"],
                "addresses": ["203.0.113.1"],
                "latest": {"ip": "[redacted]", "key": "[redacted]"},
                "compromised": [{"account": "bob"}],
                "note": "seen from [redacted] twice"
            })
        );
        assert_eq!(scrub_text("ALICE failed", &needles), "[redacted] failed");
        assert_eq!(
            scrub_text("malice from 198.51.100.71", &needles),
            "malice from 198.51.100.71"
        );
        assert_eq!(
            scrub_text("from 198.51.100.7.", &needles),
            "from [redacted]."
        );
    }
}
