//! Detection's second stage in SQL: a batch's signals in, the alerts they touch recomputed.
//!
//! The contract (`authtrail_projections::detect`): an alert is an episode of one rule ×
//! subject's signals, a function of the set of signals. For every rule × subject the batch
//! added signals to, this loads the subject's stored signals around them, widening the range
//! until every episode that holds one of the batch's signals is whole, then replaces the alerts
//! overlapping those episodes with the episodes' alerts. Subjects shared between partitions
//! (networks, everyone) are recomputed under a transaction-scoped advisory lock, taken in one
//! order: whichever of two concurrent workers recomputes second waits for the first to commit
//! and then reads its signals, so the last word is always computed from all of them.

use super::copy::copy_rows;
use authtrail_projections::detect::{
    episode_day, episode_day_bounds, episodes, Alert, Detection, Rule, Signal,
};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How far around a batch's signals the first load reaches (most episodes are whole in it).
const REACH: TimeDelta = TimeDelta::hours(1);

/// A time range, first to last.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Stores the signals and recomputes the alerts they touch. Returns the alerts written (new or
/// grown), for live feeds and the alert dispatcher.
pub(crate) async fn write_signals_and_alerts(
    conn: &mut PgConnection,
    detection: &Detection,
    signals: &[Signal],
) -> Result<Vec<Alert>, sqlx::Error> {
    if signals.is_empty() {
        return Ok(vec![]);
    }
    super::sink::upsert(conn, &super::sink::SIGNALS, signals.iter()).await?;

    // The batch's rule × subjects (rules that are on) and the times of their new signals.
    let mut touched: BTreeMap<(Rule, &str), Vec<DateTime<Utc>>> = BTreeMap::new();
    for s in signals {
        if let Some(rule) = Rule::parse(&s.rule).filter(|r| detection.on(*r).is_some()) {
            touched.entry((rule, &s.subject)).or_default().push(s.at);
        }
    }
    lock_shared(conn, touched.keys()).await?;

    // The affected episodes lie within the days of the touched times (episodes end at
    // midnight): every range is clamped to those days.
    let days: BTreeMap<(Rule, &str), Span> = touched
        .iter()
        .map(|(k, times)| {
            let first = episode_day_bounds(*times.iter().min().expect("non-empty")).0;
            let last = episode_day_bounds(*times.iter().max().expect("non-empty")).1;
            (*k, (first, last))
        })
        .collect();
    let mut ranges: BTreeMap<(Rule, &str), Span> = touched
        .iter()
        .map(|(k, times)| {
            let w = detection.on(k.0).expect("on").window;
            let (first, last) = days[k];
            let lo = (*times.iter().min().expect("non-empty") - w - REACH).max(first);
            let hi = (*times.iter().max().expect("non-empty") + w + REACH).min(last);
            (*k, (lo, hi))
        })
        .collect();
    let mut loaded: BTreeMap<(Rule, &str), Vec<Signal>> = BTreeMap::new();
    let mut pending: BTreeSet<(Rule, &str)> = ranges.keys().copied().collect();
    let mut written = vec![];
    while !pending.is_empty() {
        let batch: Vec<((Rule, &str), Span)> = pending.iter().map(|k| (*k, ranges[k])).collect();
        let rows = load(conn, &batch).await?;
        for k in &pending {
            loaded.insert(*k, vec![]);
        }
        let by_name: HashMap<(Rule, String), (Rule, &str)> = pending
            .iter()
            .map(|k| ((k.0, k.1.to_owned()), *k))
            .collect();
        for s in rows {
            let Some(rule) = Rule::parse(&s.rule) else {
                continue;
            };
            let key = by_name.get(&(rule, s.subject.clone()));
            if let Some(v) = key.and_then(|k| loaded.get_mut(k)) {
                v.push(s);
            }
        }
        let mut again = BTreeSet::new();
        for k in std::mem::take(&mut pending) {
            let settings = *detection.on(k.0).expect("on");
            let (lo, hi) = ranges[&k];
            let all = &loaded[&k];
            // Episodes as time spans: consecutive signals no further apart than the window.
            let spans = spans(all, settings.window);
            let times = &touched[&k];
            let affected: Vec<(DateTime<Utc>, DateTime<Utc>)> = spans
                .into_iter()
                .filter(|(a, b)| times.iter().any(|t| a <= t && t <= b))
                .collect();
            // An affected episode reaching an edge of what was loaded may go on beyond it,
            // unless that edge is the end of its day.
            let (first, last) = days[&k];
            let open_lo = lo > first && affected.iter().any(|(a, _)| *a - settings.window <= lo);
            let open_hi = hi < last && affected.iter().any(|(_, b)| *b + settings.window >= hi);
            if open_lo || open_hi {
                let widen = (hi - lo) * 2;
                ranges.insert(
                    k,
                    (
                        if open_lo { (lo - widen).max(first) } else { lo },
                        if open_hi { (hi + widen).min(last) } else { hi },
                    ),
                );
                again.insert(k);
                continue;
            }
            // Replace what the affected episodes were with what they are.
            let firsts: Vec<DateTime<Utc>> = affected.iter().map(|x| x.0).collect();
            let lasts: Vec<DateTime<Utc>> = affected.iter().map(|x| x.1).collect();
            sqlx::query(
                "DELETE FROM alerts a USING UNNEST($3::timestamptz[], $4::timestamptz[]) AS e(f, l)
                 WHERE a.rule = $1 AND a.subject = $2 AND a.first_seen <= e.l AND a.last_seen >= e.f",
            )
            .bind(k.0.as_str())
            .bind(k.1)
            .bind(&firsts)
            .bind(&lasts)
            .execute(&mut *conn)
            .await?;
            let inside: Vec<Signal> = all
                .iter()
                .filter(|s| affected.iter().any(|(a, b)| *a <= s.at && s.at <= *b))
                .cloned()
                .collect();
            written.extend(episodes(k.0, &settings, detection.evidence_max, &inside));
        }
        pending = again;
    }
    copy_rows(conn, "alerts", written.iter()).await?;
    Ok(written)
}

/// The time spans of the episodes among `signals` (sorted here).
fn spans(signals: &[Signal], window: TimeDelta) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut times: Vec<DateTime<Utc>> = signals.iter().map(|s| s.at).collect();
    times.sort();
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = vec![];
    for t in times {
        match out.last_mut() {
            Some((_, b)) if t - *b <= window && episode_day(t) == episode_day(*b) => *b = t,
            _ => out.push((t, t)),
        }
    }
    out
}

/// Takes the advisory lock of every shared rule × subject, in one order.
async fn lock_shared<'a>(
    conn: &mut PgConnection,
    keys: impl Iterator<Item = &'a (Rule, &'a str)>,
) -> Result<(), sqlx::Error> {
    let names: Vec<String> = keys
        .filter(|(r, _)| r.shared_subject())
        .map(|(r, s)| format!("{r}/{s}"))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(h)) FROM (
             SELECT DISTINCT hashtextextended('authtrail.alerts/' || n, 0) AS h
             FROM UNNEST($1::text[]) AS n ORDER BY 1) AS l",
    )
    .bind(&names)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored signals of each rule × subject within its range.
async fn load(
    conn: &mut PgConnection,
    ranges: &[((Rule, &str), Span)],
) -> Result<Vec<Signal>, sqlx::Error> {
    let rules: Vec<&str> = ranges.iter().map(|((r, _), _)| r.as_str()).collect();
    let subjects: Vec<&str> = ranges.iter().map(|((_, s), _)| *s).collect();
    let los: Vec<DateTime<Utc>> = ranges.iter().map(|(_, (lo, _))| *lo).collect();
    let his: Vec<DateTime<Utc>> = ranges.iter().map(|(_, (_, hi))| *hi).collect();
    let rows: Vec<Json<Signal>> = sqlx::query_scalar(
        "SELECT row_to_json(s) FROM alert_signals s
         JOIN UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS q(rule, subject, lo, hi)
           ON s.rule = q.rule AND s.subject = q.subject AND s.at BETWEEN q.lo AND q.hi",
    )
    .bind(&rules)
    .bind(&subjects)
    .bind(&los)
    .bind(&his)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
