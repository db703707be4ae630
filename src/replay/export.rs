//! `authtrail replay`: a slice of the log for analysts, as NDJSON (the stored bytes) or CSV.
//!
//! Start and end are offsets (every partition, or `P:O,P:O`) or RFC 3339 times resolved with the
//! broker's offsets-for-times (the broker timestamp: when the event was appended). The end is
//! exclusive and captured once at start, so the output is a consistent snapshot; `--follow`
//! keeps reading past it.
//!
//! Output order: by event time, ties broken by `(partition, offset)`. A partition is mostly but
//! not strictly in event time (late events are appended when they arrive), so each partition's
//! sequence first passes a sliding sort window of `--reorder-window` events (a heap: the smallest
//! comes out once the window is full), then the partitions are merged (always the smallest
//! `(time, partition, offset)` among their next events). Memory stays bounded by the window, and
//! the result is a pure function of the log: two replays of the same slice are byte-identical.
//! When no event is later than the window's worth of its partition's events, the output is
//! exactly sorted by `(time, partition, offset)`. After the snapshot, `--follow` writes events
//! as they arrive.

use super::log::{self, Chunk, Range};
use crate::config::Config;
use crate::projector::LogMessage;
use anyhow::{bail, Context};
use authtrail_events::{Event, EventType};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One CloudEvent per line, byte for byte as stored in the log.
    Ndjson,
    /// Flat columns (see [`CSV_HEADER`]) with the `data` member as JSON in the last column. A
    /// cell starting with `=`, `+`, `-`, `@`, tab or CR is prefixed with `'` (no formulas).
    Csv,
}

/// `authtrail replay` arguments.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Where to start (inclusive): an offset for every partition, `P:O,P:O` per partition, or an
    /// RFC 3339 time (broker timestamp). Default: the beginning.
    #[arg(long, value_name = "OFFSET|P:O,..|TIME")]
    pub from: Option<String>,
    /// Where to stop (exclusive), same forms. Default: the end at start (high watermarks).
    #[arg(long, value_name = "OFFSET|P:O,..|TIME")]
    pub to: Option<String>,
    /// Only events whose event time is at or after this (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub after: Option<DateTime<Utc>>,
    /// Only events whose event time is before this (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub before: Option<DateTime<Utc>>,
    /// Only events of this user (the CloudEvent `subject`); repeatable.
    #[arg(long)]
    pub user: Vec<String>,
    /// Only events with this login identifier (case-insensitive); repeatable.
    #[arg(long)]
    pub identifier: Vec<String>,
    /// Only events of this type, e.g. `login.failed`; repeatable.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: Vec<String>,
    /// Only events from this IP address; repeatable.
    #[arg(long)]
    pub ip: Vec<String>,
    /// Only events from this country (ISO 3166-1 alpha-2, case-insensitive); repeatable.
    #[arg(long)]
    pub country: Vec<String>,
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: Format,
    /// Output file; standard output when absent or `-`.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Keep reading past the end captured at start (until interrupted).
    #[arg(long, conflicts_with = "to")]
    pub follow: bool,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Events per partition held to sort late arrivals into event-time order.
    #[arg(long, default_value_t = 10_000)]
    pub reorder_window: usize,
}

/// Which events to write.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    users: BTreeSet<String>,
    identifiers: BTreeSet<String>,
    types: BTreeSet<String>,
    ips: BTreeSet<String>,
    countries: BTreeSet<String>,
}

impl Filter {
    pub fn from_args(a: &ReplayArgs) -> anyhow::Result<Filter> {
        for t in &a.event_type {
            if t.parse::<EventType>().is_err() {
                bail!("unknown event type {t:?}");
            }
        }
        Ok(Filter {
            after: a.after,
            before: a.before,
            users: a.user.iter().cloned().collect(),
            identifiers: a.identifier.iter().map(|s| s.to_lowercase()).collect(),
            types: a.event_type.iter().cloned().collect(),
            ips: a.ip.iter().cloned().collect(),
            countries: a.country.iter().map(|s| s.to_uppercase()).collect(),
        })
    }

    fn needs_data(&self) -> bool {
        !(self.identifiers.is_empty() && self.ips.is_empty() && self.countries.is_empty())
    }

    /// Whether `e` (with its `data` as JSON when [`Filter::needs_data`]) passes.
    fn accepts(&self, e: &Event, data: Option<&Value>) -> bool {
        if self.after.is_some_and(|t| e.time < t) || self.before.is_some_and(|t| e.time >= t) {
            return false;
        }
        if !self.users.is_empty() && !e.subject.as_ref().is_some_and(|s| self.users.contains(s)) {
            return false;
        }
        if !self.types.is_empty() && !self.types.contains(e.event_type().as_str()) {
            return false;
        }
        let field = |name: &str| data.and_then(|d| d.get(name)).and_then(Value::as_str);
        if !self.identifiers.is_empty()
            && !field("identifier").is_some_and(|i| self.identifiers.contains(&i.to_lowercase()))
        {
            return false;
        }
        if !self.ips.is_empty() && !field("ip").is_some_and(|i| self.ips.contains(i)) {
            return false;
        }
        if !self.countries.is_empty() {
            let cc = data
                .and_then(|d| d.pointer("/geo/country_code"))
                .and_then(Value::as_str);
            if !cc.is_some_and(|c| self.countries.contains(&c.to_uppercase())) {
                return false;
            }
        }
        true
    }
}

/// The CSV columns.
pub const CSV_HEADER: [&str; 21] = [
    "partition",
    "offset",
    "id",
    "time",
    "type",
    "source",
    "publisher",
    "subject",
    "session_id",
    "identifier",
    "login_method",
    "failure_reason",
    "ip",
    "country_code",
    "city",
    "device_id",
    "device_type",
    "browser",
    "os",
    "user_agent",
    "data",
];

fn csv_record(partition: i32, offset: i64, e: &Event, data: &Value) -> Vec<String> {
    let s = |p: &str| {
        data.pointer(p)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    vec![
        partition.to_string(),
        offset.to_string(),
        e.id.to_string(),
        e.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        e.event_type().as_str().to_owned(),
        e.source.clone(),
        e.publisher.clone().unwrap_or_default(),
        e.subject.clone().unwrap_or_default(),
        s("/session_id"),
        s("/identifier"),
        s("/login_method"),
        s("/failure_reason"),
        s("/ip"),
        s("/geo/country_code"),
        s("/geo/city"),
        s("/device_id"),
        s("/device/type"),
        s("/device/browser"),
        s("/device/os"),
        s("/user_agent"),
        data.to_string(),
    ]
}

/// `cell` as a spreadsheet must show it: a cell starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be read as a formula (OWASP "CSV injection": `=HYPERLINK(...)` in a user
/// id runs when an analyst opens the export), so it gets a leading `'`, which spreadsheets take
/// as "text" and do not show. Every column passes here, whoever wrote it.
fn neutralised(mut cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.insert(0, '\'');
    }
    cell
}

/// Counts for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages read from the log.
    pub read: u64,
    /// Messages that are not valid events (skipped).
    invalid: u64,
    /// Events written.
    pub written: u64,
    /// Events written per type.
    pub per_type: BTreeMap<String, u64>,
}

/// One parsed message waiting in its partition's queue.
struct Item {
    time: DateTime<Utc>,
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
    event: Event,
    data: Option<Value>,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key().cmp(&o.key())
    }
}
impl Item {
    fn key(&self) -> (DateTime<Utc>, i32, i64) {
        (self.time, self.partition, self.offset)
    }
}

/// One partition's sort window and what has left it, in order.
#[derive(Default)]
struct Part {
    window: BinaryHeap<Reverse<Item>>,
    ready: VecDeque<Item>,
}

impl Part {
    fn push(&mut self, item: Item, window: usize) {
        self.window.push(Reverse(item));
        while self.window.len() > window {
            self.ready.extend(self.window.pop().map(|r| r.0));
        }
    }
    fn finish(&mut self) {
        while let Some(Reverse(i)) = self.window.pop() {
            self.ready.push_back(i);
        }
    }
}

enum Out {
    Ndjson(Box<dyn Write>),
    Csv(Box<csv::Writer<Box<dyn Write>>>),
}

impl Out {
    /// Writes `out` in `format` (CSV starts with its header).
    fn new(out: Box<dyn Write>, format: Format) -> anyhow::Result<Out> {
        Ok(match format {
            Format::Ndjson => Out::Ndjson(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_HEADER)?;
                Out::Csv(Box::new(w))
            }
        })
    }

    fn write(&mut self, item: &Item) -> anyhow::Result<()> {
        match self {
            Out::Ndjson(w) => {
                w.write_all(&item.payload)?;
                w.write_all(b"\n")?;
            }
            Out::Csv(w) => {
                let data = match &item.data {
                    Some(d) => d.clone(),
                    None => serde_json::to_value(&item.event.data)?,
                };
                let record = csv_record(item.partition, item.offset, &item.event, &data);
                w.write_record(record.into_iter().map(neutralised))?;
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Out::Ndjson(w) => w.flush()?,
            Out::Csv(w) => w.flush()?,
        }
        Ok(())
    }
}

/// Parses an offset bound: `N` for every partition, or `P:N,P:N`.
fn parse_offsets(s: &str, partitions: &[i32]) -> Option<BTreeMap<i32, i64>> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return Some(partitions.iter().map(|&p| (p, n.max(0))).collect());
    }
    let mut out = BTreeMap::new();
    for part in s.split(',') {
        let (p, o) = part.trim().split_once(':')?;
        out.insert(p.trim().parse().ok()?, o.trim().parse::<i64>().ok()?.max(0));
    }
    Some(out)
}

/// Resolves a `--from`/`--to` bound to offsets per partition.
async fn resolve_bound(
    config: &Config,
    partitions: &[i32],
    bound: &str,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    if let Some(o) = parse_offsets(bound, partitions) {
        return Ok(o);
    }
    let time: DateTime<Utc> = bound
        .parse()
        .with_context(|| format!("{bound:?} is neither an offset, P:O,... nor an RFC 3339 time"))?;
    log::offsets_for_time(&config.kafka, partitions, time).await
}

/// Runs `authtrail replay`.
pub(crate) async fn run(config: Config, args: ReplayArgs) -> anyhow::Result<Summary> {
    let filter = Filter::from_args(&args)?;
    let out: Box<dyn Write> = match args.output.as_deref() {
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::BufWriter::new(std::io::stdout())),
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
    };
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let summary = replay(&config, &args, &filter, out, progress).await?;
    eprintln!(
        "replay: read {} message(s), wrote {} event(s), skipped {} invalid message(s)",
        summary.read, summary.written, summary.invalid
    );
    for (t, n) in &summary.per_type {
        eprintln!("  {t:<28} {n}");
    }
    Ok(summary)
}

/// Replays into `out`; returns the counts.
pub async fn replay(
    config: &Config,
    args: &ReplayArgs,
    filter: &Filter,
    out: Box<dyn Write>,
    progress: bool,
) -> anyhow::Result<Summary> {
    let ranges = snapshot_ranges(config, args).await?;
    let keys = crate::privacy::Keyring::from_config(config)?;
    let bar = progress.then(|| progress_bar(&ranges));
    let mut out = Out::new(out, args.format)?;
    let keep_data = filter.needs_data() || args.format == Format::Csv;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = log::spawn_reader(&config.kafka, ranges.clone(), 2000, tx, stop.clone());
    let _stop_guard = StopOnDrop(stop.clone());

    let mut summary = Summary::default();
    let mut merge = Merge::new(&ranges, args.reorder_window);
    loop {
        let Some(chunk) = rx.recv().await else { break };
        let done = match chunk {
            Chunk::Messages(msgs) => {
                let items = items_of(msgs, keep_data, keys.as_deref()).await?;
                merge.take(items, filter, &mut summary)?;
                if let Some(b) = &bar {
                    b.set_position(summary.read);
                }
                false
            }
            Chunk::Done => true,
        };
        if done {
            merge.finish();
        }
        merge.emit(&mut out, &mut summary)?;
        if done {
            break;
        }
    }
    let reader_result = tokio::task::spawn_blocking(move || reader.join()).await?;
    match reader_result {
        Ok(r) => r?,
        Err(_) => bail!("log reader panicked"),
    }
    merge.finish();
    merge.emit(&mut out, &mut summary)?;
    out.flush()?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }

    if args.follow {
        follow(
            config,
            &ranges,
            &stop,
            filter,
            keep_data,
            keys.as_deref(),
            &mut out,
            &mut summary,
        )
        .await?;
    }
    Ok(summary)
}

/// What to read of every partition: from `--from` (default: the log start) to `--to` (default:
/// the end as the replay starts), within what the log holds.
async fn snapshot_ranges(config: &Config, args: &ReplayArgs) -> anyhow::Result<Vec<Range>> {
    let partitions = log::partitions(&config.kafka).await?;
    let marks = log::watermarks(&config.kafka, &partitions).await?;
    let starts = match &args.from {
        Some(b) => resolve_bound(config, &partitions, b).await?,
        None => marks.iter().map(|(&p, &(low, _))| (p, low)).collect(),
    };
    let ends = match &args.to {
        Some(b) => resolve_bound(config, &partitions, b).await?,
        None => marks.iter().map(|(&p, &(_, high))| (p, high)).collect(),
    };
    Ok(partitions
        .iter()
        .map(|&p| {
            let (low, high) = marks[&p];
            let start = starts.get(&p).copied().unwrap_or(low).max(low);
            let end = ends.get(&p).copied().unwrap_or(high).min(high);
            Range {
                partition: p,
                start,
                end: Some(end),
            }
        })
        .collect())
}

/// A progress bar over the messages of `ranges`.
fn progress_bar(ranges: &[Range]) -> indicatif::ProgressBar {
    let total: u64 = ranges
        .iter()
        .map(|r| (r.end.unwrap_or(r.start) - r.start).max(0) as u64)
        .sum();
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// The events `msgs` hold, in order, each with its message's partition and offset (`None`
/// where a message is not a valid event), `data` as JSON when `keep_data`. Encrypted personal
/// members are opened with `keys` where the subject's key exists; the event is written as
/// opened (or redacted, for a forgotten subject), never with its ciphertext.
async fn items_of(
    msgs: Vec<LogMessage>,
    keep_data: bool,
    keys: Option<&crate::privacy::Keyring>,
) -> anyhow::Result<Vec<(i32, i64, Option<Item>)>> {
    let mut places = Vec::with_capacity(msgs.len());
    let mut parsed: Vec<(Vec<u8>, bool)> = vec![];
    let mut events: Vec<Event> = vec![];
    for m in msgs {
        let payload = m.payload.unwrap_or_default();
        match authtrail_events::parse(&payload) {
            Ok(event) => {
                places.push((m.partition, m.offset, true));
                parsed.push((payload, event.personal.is_some()));
                events.push(event);
            }
            Err(_) => places.push((m.partition, m.offset, false)),
        }
    }
    crate::privacy::open_or_refuse(keys, &mut events).await?;
    let mut opened = events.into_iter().zip(parsed);
    let mut out = Vec::with_capacity(places.len());
    for (partition, offset, valid) in places {
        if !valid {
            out.push((partition, offset, None));
            continue;
        }
        let (event, (payload, sealed)) = opened.next().expect("one event per valid message");
        let payload = if sealed {
            event.to_json_bytes()
        } else {
            payload
        };
        let data = if keep_data {
            Some(serde_json::to_value(&event.data)?)
        } else {
            None
        };
        out.push((
            partition,
            offset,
            Some(Item {
                time: event.time,
                partition,
                offset,
                payload,
                event,
                data,
            }),
        ));
    }
    Ok(out)
}

/// The snapshot's merge: a queue per partition still being read; [`Merge::emit`] writes while
/// every open partition has a head (or is finished).
struct Merge {
    queues: BTreeMap<i32, Part>,
    /// The end of every partition not read to its end yet.
    remaining: BTreeMap<i32, i64>,
    window: usize,
}

impl Merge {
    fn new(ranges: &[Range], window: usize) -> Merge {
        let open = || ranges.iter().filter(|r| r.end.is_some_and(|e| e > r.start));
        Merge {
            queues: open().map(|r| (r.partition, Part::default())).collect(),
            remaining: open().map(|r| (r.partition, r.end.unwrap_or(0))).collect(),
            window,
        }
    }

    /// Queues the events of `msgs` that pass `filter`; a partition's last message finishes it.
    fn take(
        &mut self,
        items: Vec<(i32, i64, Option<Item>)>,
        filter: &Filter,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        for (partition, offset, item) in items {
            summary.read += 1;
            let last = self
                .remaining
                .get(&partition)
                .is_some_and(|end| offset + 1 >= *end);
            if last {
                self.remaining.remove(&partition);
            }
            let Some(item) = item else {
                summary.invalid += 1;
                if last {
                    self.queues.entry(partition).or_default().finish();
                }
                continue;
            };
            if let Some(q) = self.queues.get_mut(&partition) {
                if filter.accepts(&item.event, item.data.as_ref()) {
                    q.push(item, self.window);
                }
                if last {
                    q.finish();
                }
            }
        }
        Ok(())
    }

    /// Every partition is read: what the windows hold is ready.
    fn finish(&mut self) {
        self.remaining.clear();
        self.queues.values_mut().for_each(Part::finish);
    }

    fn emit(&mut self, out: &mut Out, summary: &mut Summary) -> anyhow::Result<()> {
        emit(&mut self.queues, &self.remaining, out, summary)
    }
}

/// Past the snapshot (`ranges`): writes events as they arrive, until interrupted.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn follow(
    config: &Config,
    ranges: &[Range],
    stop: &Arc<AtomicBool>,
    filter: &Filter,
    keep_data: bool,
    keys: Option<&crate::privacy::Keyring>,
    out: &mut Out,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let follow_ranges: Vec<Range> = ranges
        .iter()
        .map(|r| Range {
            partition: r.partition,
            start: r.end.unwrap_or(r.start),
            end: None,
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let _reader = log::spawn_reader(&config.kafka, follow_ranges, 500, tx, stop.clone());
    let interrupted = crate::signal::shutdown_signal();
    tokio::pin!(interrupted);
    loop {
        let chunk = tokio::select! {
            _ = &mut interrupted => break,
            c = rx.recv() => match c { Some(c) => c, None => break },
        };
        if let Chunk::Messages(msgs) = chunk {
            for (_, _, item) in items_of(msgs, keep_data, keys).await? {
                summary.read += 1;
                let Some(item) = item else {
                    summary.invalid += 1;
                    continue;
                };
                if filter.accepts(&item.event, item.data.as_ref()) {
                    count(summary, &item);
                    out.write(&item)?;
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}

struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn count(summary: &mut Summary, item: &Item) {
    summary.written += 1;
    *summary
        .per_type
        .entry(item.event.event_type().as_str().to_owned())
        .or_default() += 1;
}

/// Writes the merge as far as it is decided: while every partition still being read has an
/// event out of its window, the smallest `(time, partition, offset)` of those goes next.
fn emit(
    queues: &mut BTreeMap<i32, Part>,
    open: &BTreeMap<i32, i64>,
    out: &mut Out,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    loop {
        if open
            .keys()
            .any(|p| queues.get(p).is_some_and(|q| q.ready.is_empty()))
        {
            return Ok(());
        }
        let next = queues
            .iter()
            .filter_map(|(p, q)| q.ready.front().map(|i| (i.time, *p, i.offset)))
            .min();
        let Some((_, p, _)) = next else {
            return Ok(());
        };
        let item = queues
            .get_mut(&p)
            .and_then(|q| q.ready.pop_front())
            .expect("head exists");
        count(summary, &item);
        out.write(&item)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(time: i64, partition: i32, offset: i64) -> Item {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000 + time, 0).unwrap();
        let event = authtrail_events::parse(
            serde_json::json!({
                "specversion": "1.0", "id": uuid::Uuid::from_u128(offset as u128 + 1).to_string(),
                "source": "/t", "type": "session.logged_out", "time": t.to_rfc3339(),
                "subject": "u", "datacontenttype": "application/json", "schemaversion": 1,
                "data": {"session_id": "s"}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        Item {
            time: t,
            partition,
            offset,
            payload: vec![],
            event,
            data: None,
        }
    }

    #[test]
    fn the_window_sorts_late_events_and_the_merge_breaks_ties_by_partition_then_offset() {
        let mut p = Part::default();
        for (i, t) in [5, 1, 3, 2, 9, 4].into_iter().enumerate() {
            p.push(item(t, 0, i as i64), 3);
        }
        // Window 3: 5,1,3,2 -> 1 out; 9 -> 2 out; 4 -> 3 out.
        let out: Vec<i64> = p
            .ready
            .iter()
            .map(|i| i.time.timestamp() - 1_800_000_000)
            .collect();
        assert_eq!(out, [1, 2, 3]);
        p.finish();
        let out: Vec<i64> = p
            .ready
            .iter()
            .map(|i| i.time.timestamp() - 1_800_000_000)
            .collect();
        assert_eq!(out, [1, 2, 3, 4, 5, 9]);

        let mut queues: BTreeMap<i32, Part> = BTreeMap::new();
        for (t, part, off) in [(1, 1, 0), (1, 0, 7), (2, 1, 1), (1, 0, 3)] {
            queues.entry(part).or_default().push(item(t, part, off), 10);
        }
        queues.values_mut().for_each(Part::finish);
        let mut summary = Summary::default();
        let buf = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u8>::new()));
        struct W(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = Out::Csv(Box::new(csv::Writer::from_writer(
            Box::new(W(buf.clone())) as Box<dyn Write>
        )));
        emit(&mut queues, &BTreeMap::new(), &mut out, &mut summary).unwrap();
        out.flush().unwrap();
        drop(out);
        let text = String::from_utf8(buf.borrow().clone()).unwrap();
        let order: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let mut c = l.split(',');
                (c.next().unwrap().to_owned(), c.next().unwrap().to_owned())
            })
            .collect();
        let want = [("0", "3"), ("0", "7"), ("1", "0"), ("1", "1")];
        assert_eq!(
            order,
            want.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec()
        );
        assert_eq!(summary.written, 4);
    }

    /// Tab and CR cannot reach a cell through the contract (it refuses control characters),
    /// but the neutraliser does not rely on that.
    #[test]
    fn the_csv_names_who_appended_each_event() {
        let mut e = item(0, 0, 0).event;
        let column = CSV_HEADER.iter().position(|h| *h == "publisher").unwrap();
        let data = serde_json::json!({});
        assert_eq!(csv_record(0, 0, &e, &data)[column], "");
        e.publisher = Some("api-key:django".into());
        assert_eq!(csv_record(0, 0, &e, &data)[column], "api-key:django");
    }

    #[test]
    fn a_cell_that_a_spreadsheet_would_read_as_a_formula_gets_a_quote() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralised(cell.to_owned()), format!("'{cell}"));
        }
        for cell in [
            "",
            "a=1",
            " =1",
            "'=1",
            "2026-11-25T00:00:00Z",
            "{\"a\":-1}",
        ] {
            assert_eq!(neutralised(cell.to_owned()), cell);
        }
    }

    #[test]
    fn offset_bounds_parse_for_every_partition_or_per_partition() {
        assert_eq!(parse_offsets("5", &[0, 1]), Some([(0, 5), (1, 5)].into()));
        assert_eq!(
            parse_offsets("0:10, 2:3", &[0, 1, 2]),
            Some([(0, 10), (2, 3)].into())
        );
        assert_eq!(parse_offsets("2026-11-25T00:00:00Z", &[0]), None);
    }
}
