//! Detection measured against the simulator's labels: per attack kind, how many injected
//! attacks raised the alert meant for them, how long it took, and how many alerts normal traffic
//! raised (false alarms).
//!
//! An attack is detected when an alert of one of its kind's rules ([`rules_for`]) holds one of
//! the attack's labelled events as evidence. A false alarm is an alert of severity warning or
//! above whose evidence holds no labelled event (notices such as "new device" for a person who
//! bought a phone are information, not alarms). Time to alert is event time: from the attack's
//! first event to the evidence event that made its alert reach the rule's threshold.

use super::{Attack, Generator, Label, Settings};
use authtrail_events::{Event, EventData};
use authtrail_projections::detect::{Alert, Detection, Rule};
use authtrail_projections::rows::Severity;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// A labelled stream of at least `n` events from `settings`, each passed through `each` (the
/// enrichment) as it is made: after `n`, attacks stop and the stream goes on for an hour of
/// simulated time, so that every injected attack is whole.
pub fn labelled_stream(
    settings: Settings,
    n: usize,
    mut each: impl FnMut(&mut Event),
) -> (Vec<Event>, Vec<Label>) {
    let mut gen = Generator::new(settings);
    let (mut events, mut labels) = (Vec::with_capacity(n), vec![]);
    let mut end = None;
    loop {
        let (mut e, l) = gen.next_labelled();
        if events.len() == n {
            gen.stop_attacks();
            end = Some(e.time + TimeDelta::hours(1));
        }
        if end.is_some_and(|end| e.time > end) {
            break;
        }
        each(&mut e);
        labels.extend(l);
        events.push(e);
    }
    (events, labels)
}

/// The rules that should report an attack of this kind.
pub fn rules_for(kind: Attack) -> &'static [Rule] {
    match kind {
        Attack::BruteForce => &[Rule::BruteForce],
        Attack::PasswordSpray => &[Rule::PasswordSpraying],
        Attack::CredentialStuffing => &[Rule::CredentialStuffing],
        Attack::NewCountry => &[Rule::NewDevice, Rule::NewCountry],
        Attack::ImpossibleTravel => &[Rule::ImpossibleTravel],
        Attack::RefreshTokenReuse => &[Rule::RefreshTokenReuse],
        Attack::OtpBruteForce => &[Rule::OtpBruteForce],
        Attack::SessionHijack => &[Rule::SessionHijack],
        Attack::PrivilegedLogin => &[Rule::PrivilegedLogin],
        Attack::OffHoursAdmin => &[Rule::UnusualHour],
    }
}

/// One attack kind's line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct KindScore {
    pub kind: Attack,
    pub injected: usize,
    pub detected: usize,
    /// Attacks not detected (their ids), for diagnosis.
    pub missed: Vec<Uuid>,
    /// Event-time delays from each detected attack's first event to its alert.
    pub delays: Vec<TimeDelta>,
}

impl KindScore {
    /// The median delay, if any attack was detected.
    pub fn median_delay(&self) -> Option<TimeDelta> {
        let mut d = self.delays.clone();
        d.sort();
        d.get(d.len() / 2).copied()
    }
}

/// The whole measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub kinds: Vec<KindScore>,
    /// Successful logins with no label.
    pub normal_logins: usize,
    /// Alerts (warning or above) with no labelled evidence.
    pub false_alarms: Vec<Alert>,
}

impl Score {
    /// False alarms per 10 000 normal logins.
    pub fn false_alarm_rate(&self) -> f64 {
        self.false_alarms.len() as f64 * 10_000.0 / self.normal_logins.max(1) as f64
    }

    /// Whether every injected attack of every kind was detected.
    pub fn all_detected(&self) -> bool {
        self.kinds.iter().all(|k| k.detected == k.injected)
    }

    /// The table: kind, injected, detected, median time to alert; then false alarms.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| attack kind | rule(s) | injected | detected | median time to alert |\n|---|---|---|---|---|\n",
        );
        for k in &self.kinds {
            let rules: Vec<&str> = rules_for(k.kind).iter().map(|r| r.as_str()).collect();
            let delay = k.median_delay().map_or("–".to_owned(), human);
            out.push_str(&format!(
                "| {} | {} | {} | {} ({:.0} %) | {} |\n",
                k.kind.as_str(),
                rules.join(", "),
                k.injected,
                k.detected,
                100.0 * k.detected as f64 / k.injected.max(1) as f64,
                delay
            ));
        }
        out.push_str(&format!(
            "\nFalse alarms (warning or above, no labelled evidence): {} over {} normal logins = {:.2} per 10 000\n",
            self.false_alarms.len(),
            self.normal_logins,
            self.false_alarm_rate()
        ));
        let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &self.false_alarms {
            *by_rule.entry(a.rule.as_str()).or_default() += 1;
        }
        for (rule, n) in by_rule {
            out.push_str(&format!("  {rule}: {n}\n"));
        }
        out
    }
}

fn human(d: TimeDelta) -> String {
    let s = d.num_milliseconds() as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// Scores `alerts` against the `labels` of `events` (the stream that produced them).
pub fn score(events: &[Event], labels: &[Label], alerts: &[Alert], detection: &Detection) -> Score {
    let time: HashMap<Uuid, DateTime<Utc>> = events.iter().map(|e| (e.id, e.time)).collect();
    let label_of: HashMap<Uuid, &Label> = labels.iter().map(|l| (l.event_id, l)).collect();
    // attack id → (kind, first event time)
    let mut attacks: BTreeMap<Uuid, (Attack, DateTime<Utc>)> = BTreeMap::new();
    for l in labels {
        let t = time
            .get(&l.event_id)
            .copied()
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let e = attacks.entry(l.attack_id).or_insert((l.attack, t));
        e.1 = e.1.min(t);
    }
    // attack id → earliest moment an alert meant for it reached its threshold
    let mut found: BTreeMap<Uuid, DateTime<Utc>> = BTreeMap::new();
    let mut false_alarms = vec![];
    for a in alerts {
        let Some(rule) = Rule::parse(&a.rule) else {
            continue;
        };
        let threshold = detection.on(rule).map_or(1, |s| s.threshold).max(1);
        let raised_at = a
            .evidence
            .get(threshold - 1)
            .or(a.evidence.last())
            .and_then(|id| time.get(id))
            .copied()
            .unwrap_or(a.last_seen)
            // Evidence may open with the earlier event a signal was judged against (the start
            // of a journey): the alert exists from its first signal on.
            .max(a.first_seen);
        let mut labelled = false;
        let mut mine = BTreeSet::new();
        for id in &a.evidence {
            if let Some(l) = label_of.get(id) {
                labelled = true;
                if rules_for(l.attack).contains(&rule) {
                    mine.insert(l.attack_id);
                }
            }
        }
        for attack in mine {
            let e = found.entry(attack).or_insert(raised_at);
            *e = (*e).min(raised_at);
        }
        if !labelled && a.severity != Severity::Info {
            false_alarms.push(a.clone());
        }
    }
    let mut kinds: BTreeMap<&str, KindScore> = BTreeMap::new();
    for (id, (kind, first)) in &attacks {
        let k = kinds.entry(kind.as_str()).or_insert(KindScore {
            kind: *kind,
            injected: 0,
            detected: 0,
            missed: vec![],
            delays: vec![],
        });
        k.injected += 1;
        match found.get(id) {
            Some(at) => {
                k.detected += 1;
                k.delays.push((*at - *first).max(TimeDelta::zero()));
            }
            None => k.missed.push(*id),
        }
    }
    let normal_logins = events
        .iter()
        .filter(|e| matches!(e.data, EventData::LoginSucceeded(_)) && !label_of.contains_key(&e.id))
        .count();
    let mut kinds: Vec<KindScore> = kinds.into_values().collect();
    kinds.sort_by_key(|k| Attack::ALL.iter().position(|a| *a == k.kind));
    Score {
        kinds,
        normal_logins,
        false_alarms,
    }
}
