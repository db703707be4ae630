//! Publishing against the real broker: byte-exact round trips, per-user order, and the
//! `authtrail publish` command refusing bad input without appending anything.

mod common;

use authtrail_events::{parse, Event};
use common::{examples, murmur2_partition, TestTopic};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_round_trips_byte_equal_with_key_and_partition() {
    let topic = TestTopic::new(12).await;
    let publisher = topic.publisher();
    let events: Vec<Event> = examples().iter().map(|(_, b)| parse(b).unwrap()).collect();
    let mut appended = vec![];
    for e in &events {
        appended.push(publisher.publish(e).await.unwrap());
    }
    let stored = topic.read(events.len(), READ_TIMEOUT).await;
    assert_eq!(stored.len(), events.len());
    let by_pos: HashMap<(i32, i64), _> = stored
        .iter()
        .map(|m| ((m.partition, m.offset), m))
        .collect();
    for (event, at) in events.iter().zip(&appended) {
        assert_eq!(at.id, event.id);
        let m = by_pos[&(at.partition, at.offset)];
        assert_eq!(m.payload, event.to_json_bytes(), "payload of {}", event.id);
        assert_eq!(parse(&m.payload).unwrap(), *event);
        assert_eq!(m.key, event.partition_key().as_bytes());
        assert_eq!(
            m.partition,
            murmur2_partition(&m.key, 12),
            "partition of key {:?}",
            event.partition_key()
        );
        assert_eq!(
            m.content_type.as_deref(),
            Some(authtrail::kafka::CONTENT_TYPE)
        );
    }
}

/// `kafka.content_type_header = false` leaves the header out and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_content_type_header_the_payload_and_key_are_the_same() {
    let topic = TestTopic::new(3).await;
    let config = authtrail::config::KafkaConfig {
        content_type_header: false,
        ..topic.config.clone()
    };
    let publisher = authtrail::kafka::Publisher::new(&config).unwrap();
    let event = parse(&examples()[0].1).unwrap();
    let at = publisher.publish(&event).await.unwrap();
    let stored = topic.read(1, READ_TIMEOUT).await;
    assert_eq!(
        (stored[0].partition, stored[0].offset),
        (at.partition, at.offset)
    );
    assert_eq!(stored[0].payload, event.to_json_bytes());
    assert_eq!(stored[0].key, event.partition_key().as_bytes());
    assert_eq!(stored[0].content_type, None);
}

fn activity(user: usize, seq: usize) -> Event {
    let v = json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4(),
        "source": "/test",
        "type": "session.activity",
        "time": format!("2026-11-24T10:{:02}:{:02}Z", seq / 60 % 60, seq % 60),
        "subject": format!("user-{user:02}"),
        "schemaversion": 1,
        "data": { "session_id": format!("s-{user}"), "ip": "192.0.2.1" }
    });
    authtrail_events::parse_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_of_fifty_users_keep_per_user_order() {
    let topic = TestTopic::new(12).await;
    let publisher = topic.publisher();
    let events: Vec<Event> = (0..1000).map(|i| activity(i % 50, i)).collect();
    let mut appended = vec![];
    for chunk in events.chunks(137) {
        appended.extend(publisher.publish_all(chunk).await.unwrap());
    }
    let stored = topic.read(1000, READ_TIMEOUT).await;

    // Per key: one partition, and offsets in publish order.
    let mut expected: HashMap<Vec<u8>, Vec<uuid::Uuid>> = HashMap::new();
    for e in &events {
        expected
            .entry(e.partition_key().into_bytes())
            .or_default()
            .push(e.id);
    }
    let mut got: HashMap<Vec<u8>, Vec<(i32, i64, uuid::Uuid)>> = HashMap::new();
    for m in &stored {
        let e = parse(&m.payload).unwrap();
        got.entry(m.key.clone())
            .or_default()
            .push((m.partition, m.offset, e.id));
    }
    assert_eq!(got.len(), 50);
    let mut partitions_used = std::collections::BTreeSet::new();
    for (key, mut msgs) in got {
        msgs.sort_by_key(|(_, offset, _)| *offset);
        let parts: std::collections::BTreeSet<i32> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(parts.len(), 1, "key {key:?} spread over {parts:?}");
        partitions_used.extend(parts);
        let ids: Vec<_> = msgs.iter().map(|m| m.2).collect();
        assert_eq!(ids, expected[&key], "order of key {key:?}");
    }
    assert!(
        partitions_used.len() >= 6,
        "50 users used only {partitions_used:?}"
    );
    // What publish_all reported is where the events are.
    let reported: HashMap<_, _> = appended
        .iter()
        .map(|a| (a.id, (a.partition, a.offset)))
        .collect();
    for m in &stored {
        assert_eq!(
            reported[&parse(&m.payload).unwrap().id],
            (m.partition, m.offset)
        );
    }
}

fn example_value(name: &str) -> Value {
    let (_, bytes) = examples().into_iter().find(|(n, _)| n == name).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn line(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Each bad line and the field its refusal must name.
fn bad_lines() -> Vec<(Vec<u8>, &'static str)> {
    let ok = example_value("login.succeeded.json");
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = ok.clone();
        f(&mut v);
        line(&v)
    };
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    vec![
        (b"{\"specversion\":\"1.0\",\"id\":".to_vec(), "(event)"),
        (b"[\"not\",\"an\",\"object\"]".to_vec(), "(event)"),
        (vec![b'{', b'"', 0xc3, 0x28, b'"', b'}'], "(event)"),
        (
            edit(&|v| v["data"]["details"] = json!("x".repeat(70_000))),
            "(event)",
        ),
        (edit(&|v| v["type"] = json!("login.perhaps")), "type"),
        (
            edit(&|v| {
                v["data"].as_object_mut().unwrap().remove("session_id");
            }),
            "data",
        ),
        (
            edit(&|v| v["data"]["expires_at"] = json!(true)),
            "data.expires_at",
        ),
        (edit(&|v| v["time"] = json!("24/11/2026 09:15")), "time"),
        (edit(&|v| v["schemaversion"] = json!(99)), "schemaversion"),
        (
            edit(&|v| v["data"]["refresh_token_id"] = json!(jwt)),
            "data.refresh_token_id",
        ),
        (
            edit(&|v| v["data"]["session_id"] = json!(format!("Bearer {jwt}"))),
            "data.session_id",
        ),
        (
            edit(&|v| v["data"]["password"] = json!("hunter2")),
            "data.password",
        ),
        (edit(&|v| v["id"] = json!("not-a-uuid")), "id"),
        (edit(&|v| v["specversion"] = json!("0.3")), "specversion"),
        (
            edit(&|v| {
                v.as_object_mut().unwrap().remove("subject");
            }),
            "subject",
        ),
        (edit(&|v| v["extra"] = json!(1)), "extra"),
        (
            edit(&|v| v["data"]["login_method"] = json!("telepathy")),
            "data.login_method",
        ),
        (edit(&|v| v["data"]["ip"] = json!("300.1.2.3")), "data.ip"),
    ]
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn publish_cli(topic: &TestTopic, input: &[u8], args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("publish")
        .args(args)
        .env("AUTHTRAIL_KAFKA_BROKERS", &topic.config.brokers)
        .env("AUTHTRAIL_KAFKA_TOPIC", topic.name())
        .env(
            "AUTHTRAIL_KAFKA_PARTITIONS",
            topic.config.partitions.to_string(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_command_refuses_every_bad_line_naming_line_and_field_and_appends_nothing() {
    let topic = TestTopic::new(3).await;
    let cases = bad_lines();
    assert!(cases.len() >= 15);
    let mut input = Vec::new();
    for (bytes, _) in &cases {
        input.extend_from_slice(bytes);
        input.push(b'\n');
    }
    let run = publish_cli(&topic, &input, &[]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    for (i, (_, field)) in cases.iter().enumerate() {
        let expected = format!("line {}: {field}:", i + 1);
        assert!(
            run.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("hunter2") && !run.stderr.contains("SflKxw"),
        "a secret was echoed"
    );
    assert_eq!(
        topic.end_offsets().await,
        vec![0, 0, 0],
        "something was appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_command_appends_exactly_the_valid_lines() {
    let topic = TestTopic::new(3).await;
    let good: Vec<(String, Vec<u8>)> = examples();
    let bad = bad_lines();
    let mut input = Vec::new();
    let mut bad_line_numbers = vec![];
    let mut n = 0;
    for (i, (_, bytes)) in good.iter().enumerate() {
        // The examples are pretty-printed: one line each in NDJSON.
        let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(bytes).unwrap()).unwrap();
        input.extend_from_slice(&compact);
        input.extend_from_slice(b"\r\n\n");
        n += 2;
        let (b, _) = &bad[i % bad.len()];
        input.extend_from_slice(b);
        input.push(b'\n');
        n += 1;
        bad_line_numbers.push(n);
    }
    let run = publish_cli(&topic, &input, &["--print-offsets"]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let reported = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("line "))
        .count();
    assert_eq!(reported, good.len(), "{}", run.stderr);
    for n in bad_line_numbers {
        assert!(
            run.stderr.contains(&format!("line {n}: ")),
            "line {n} not reported:\n{}",
            run.stderr
        );
    }
    let printed: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), good.len());

    let stored = topic.read(good.len(), READ_TIMEOUT).await;
    let total: i64 = topic.end_offsets().await.iter().sum();
    assert_eq!(
        total as usize,
        good.len(),
        "more than the valid lines were appended"
    );
    let mut stored_ids: Vec<_> = stored
        .iter()
        .map(|m| parse(&m.payload).unwrap().id)
        .collect();
    let mut expected: Vec<_> = good.iter().map(|(_, b)| parse(b).unwrap().id).collect();
    stored_ids.sort();
    expected.sort();
    assert_eq!(stored_ids, expected);
    for p in printed {
        let at = stored
            .iter()
            .find(|m| {
                m.partition == p["partition"].as_i64().unwrap() as i32
                    && m.offset == p["offset"].as_i64().unwrap()
            })
            .expect("printed offset exists");
        assert_eq!(
            parse(&at.payload).unwrap().id.to_string(),
            p["id"].as_str().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_the_same_event_keeps_its_id_and_partition() {
    let topic = TestTopic::new(12).await;
    let publisher = topic.publisher();
    let (_, bytes) = examples().into_iter().next().unwrap();
    let event = parse(&bytes).unwrap();
    let a = publisher.publish(&event).await.unwrap();
    let b = publisher.publish(&event).await.unwrap();
    assert_eq!((a.id, a.partition), (b.id, b.partition));
    assert_eq!(
        b.offset,
        a.offset + 1,
        "the log keeps both appends; consumers dedupe by id"
    );
    let stored = topic.read(2, READ_TIMEOUT).await;
    assert_eq!(stored[0].payload, stored[1].payload);
}
