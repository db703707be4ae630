"""End to end against a running authtrail (tools/sdk/serve): Django logins published over
Kafka (raw topic -> enrichment) and HTTP, read back through the query API; introspection;
refused raw messages on the rejected topic. Skipped when AUTHTRAIL_URL is not set.

Every wait polls with a deadline (authtrail projects asynchronously); nothing sleeps a fixed
time.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

import pytest

from authtrail import HttpPublisher, Introspector, KafkaPublisher
from conftest import IPHONE_SAFARI, LONDON_IP
from fakes import RecordingProducer

URL = os.environ.get("AUTHTRAIL_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not URL, reason="AUTHTRAIL_URL is not set (start a server with tools/sdk/serve)"),
]

DEADLINE = 60.0
PASSWORD = "integration-Pa55word-" + uuid.uuid4().hex[:8]
T = TypeVar("T")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} must be set alongside AUTHTRAIL_URL")
    return value


def wait_for(what: str, probe: Callable[[], Optional[T]], deadline: float = DEADLINE) -> T:
    """Calls ``probe`` until it returns something other than ``None``, or fails after
    ``deadline`` seconds."""
    end = time.monotonic() + deadline
    pause = 0.2
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline:.0f} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)


def user_token(subject: str, session_id: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"sub": subject, "role": "user", "sid": session_id, "iss": env("AUTHTRAIL_JWT_ISSUER"),
              "aud": env("AUTHTRAIL_JWT_AUDIENCE"), "iat": now, "exp": now + 600}
    return jwt.encode(claims, env("AUTHTRAIL_JWT_SECRET"), algorithm="HS256")


def my_session(subject: str, session_id: str) -> Optional[Dict[str, Any]]:
    """The session as ``GET /api/v1/auth/sessions`` shows it to its user, or ``None`` while
    authtrail does not know it yet (401 for a token whose session is not active)."""
    request = urllib.request.Request(f"{URL}/api/v1/auth/sessions",
                                     headers={"Authorization": f"Bearer {user_token(subject, session_id)}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            page = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 401:
            return None
        raise AssertionError(f"GET /api/v1/auth/sessions: {error.code} {error.read()[:500]!r}") from None
    for item in page.get("items", []):
        if item.get("session_id") == session_id:
            return item  # type: ignore[no-any-return]
    return None


def consume(topic: str, match: Callable[[Dict[str, Any]], bool], deadline: float = DEADLINE) -> Dict[str, Any]:
    """The first JSON record of ``topic`` (read committed, from the beginning) that ``match``es."""
    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": env("AUTHTRAIL_KAFKA_BROKERS"),
        "group.id": f"sdk-python-test-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    consumer.subscribe([topic])
    try:
        def probe() -> Optional[Dict[str, Any]]:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                return None
            record = json.loads(message.value())
            return record if isinstance(record, dict) and match(record) else None

        return wait_for(f"a matching record on {topic}", probe, deadline)
    finally:
        consumer.close()


# ---------------------------------------------------------------- Django set-up


@pytest.fixture
def django_with(request: pytest.FixtureRequest) -> Iterator[Callable[[Any], None]]:
    """Points the Django integration at a publisher for the rest of the test."""
    from django.test import override_settings

    overrides: list = []

    def use(publisher: Any) -> None:
        o = override_settings(AUTHTRAIL={"SOURCE": "/services/django-sdk-tests", "PUBLISHER": publisher,
                                         "SUBJECT": "sdk_testapp.subject_for", "RAISE_ERRORS": True})
        o.enable()
        overrides.append(o)

    yield use
    for o in reversed(overrides):
        o.disable()


def new_user() -> Any:
    from django.contrib.auth import get_user_model

    name = f"it-{uuid.uuid4().hex[:12]}"
    return get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD)


def browser() -> Any:
    from django.test import Client

    return Client(REMOTE_ADDR=LONDON_IP, HTTP_USER_AGENT=IPHONE_SAFARI)


def django_login(client: Any, username: str, password: str) -> Any:
    return client.post("/login", json.dumps({"username": username, "password": password}),
                       content_type="application/json")


def kafka_publisher() -> "tuple[KafkaPublisher, RecordingProducer]":
    from confluent_kafka import Producer

    config = KafkaPublisher.producer_config(env("AUTHTRAIL_KAFKA_BROKERS"))
    recorder = RecordingProducer(inner=Producer(config))
    return KafkaPublisher(topic=env("AUTHTRAIL_RAW_TOPIC"), producer=recorder, sync=True), recorder


def http_publisher() -> HttpPublisher:
    return HttpPublisher(env("AUTHTRAIL_URL"), env("AUTHTRAIL_API_KEY"))


def assert_enriched_london_iphone(session: Dict[str, Any]) -> None:
    assert session["city"] == "London", session
    assert session["country_code"] == "GB", session
    assert session["device_type"] == "mobile", session
    assert session["browser"] and "Safari" in session["browser"], session
    assert session["os"] and "iOS" in session["os"], session
    assert session["ip"] == LONDON_IP and session["user_agent"] == IPHONE_SAFARI


def login_and_read_back(django_with: Callable[[Any], None], publisher: Any) -> Dict[str, Any]:
    django_with(publisher)
    user, client = new_user(), browser()
    answer = django_login(client, user.username, PASSWORD)
    assert answer.status_code == 200
    session_id = answer.json()["session_id"]
    subject = f"sdkpy-{user.username}"
    session = wait_for(f"session {session_id}", lambda: my_session(subject, session_id))
    assert session["status"] == "active" and session["current"] is True
    assert session["user_id"] == subject and session["login_method"] == "password"
    return session


# ---------------------------------------------------------------- (a), (b)


def test_django_login_over_kafka_is_enriched_and_projected(django_with: Callable[[Any], None]) -> None:
    publisher, recorder = kafka_publisher()
    session = login_and_read_back(django_with, publisher)
    assert_enriched_london_iphone(session)
    (sent,) = recorder.sent
    assert sent["topic"] == env("AUTHTRAIL_RAW_TOPIC")
    assert sent["key"] == f"{session['user_id']}".encode()


def test_django_login_over_http_is_enriched_and_projected(django_with: Callable[[Any], None]) -> None:
    session = login_and_read_back(django_with, http_publisher())
    assert_enriched_london_iphone(session)


def test_http_refusal_carries_the_problem_body() -> None:
    from authtrail import ProblemError, session_logged_out

    event = session_logged_out(subject="sdkpy-refused", session_id="s-1", source="/services/sdk-python-tests")
    event["data"]["sesion_id"] = "s-1"
    with pytest.raises(ProblemError) as error:
        HttpPublisher(env("AUTHTRAIL_URL"), env("AUTHTRAIL_API_KEY"), validate=False).publish(event)
    assert error.value.status == 400 and error.value.type == "urn:authtrail:problem:invalid-event"
    assert error.value.problem["errors"][0]["field"] == "data.sesion_id"


# ---------------------------------------------------------------- (c)


def test_failed_login_is_published_without_the_password(django_with: Callable[[Any], None]) -> None:
    publisher, recorder = kafka_publisher()
    django_with(publisher)
    user = new_user()
    wrong = "Wrong-" + uuid.uuid4().hex
    assert django_login(browser(), user.username, wrong).status_code == 401
    (sent,) = recorder.sent
    event = json.loads(sent["value"])
    assert event["type"] == "login.failed" and event["data"]["failure_reason"] == "bad_password"
    assert event["data"]["identifier"] == user.username
    for secret in (wrong, PASSWORD):
        assert secret.encode() not in sent["value"] and secret.encode() not in (sent["key"] or b"")
    # authtrail accepted it: the enriched event is on the events topic, still without it.
    stored = consume(env("AUTHTRAIL_TOPIC"), lambda r: r.get("id") == event["id"])
    assert stored["type"] == "login.failed" and wrong not in json.dumps(stored)
    assert stored["data"]["geo"]["city"] == "London"


# ---------------------------------------------------------------- (d)


def test_introspection_follows_login_and_logout(django_with: Callable[[Any], None]) -> None:
    django_with(http_publisher())
    user, client = new_user(), browser()
    answer = django_login(client, user.username, PASSWORD)
    session_id = answer.json()["session_id"]
    introspector = Introspector(env("AUTHTRAIL_URL"), env("AUTHTRAIL_API_KEY"))
    info = wait_for("the session to be active",
                    lambda: introspector.session(session_id) if introspector.is_active(session_id) else None)
    assert info.user == f"sdkpy-{user.username}" and info.session_id == session_id
    assert info.expires_at is not None
    assert client.post("/logout").status_code == 200
    wait_for("the session to be inactive",
             lambda: True if not introspector.is_active(session_id) else None)
    assert not introspector.is_active("dj_" + "0" * 32)


# ---------------------------------------------------------------- (e)


@pytest.mark.parametrize("breakage,field", [
    ("no type", "type"),
    ("bad ip", "data.ip"),
])
def test_malformed_raw_message_lands_on_the_rejected_topic(breakage: str, field: str) -> None:
    from confluent_kafka import Producer

    event_id = str(uuid.uuid4())
    event: Dict[str, Any] = {
        "specversion": "1.0", "id": event_id, "source": "/services/sdk-python-tests",
        "type": "login.failed", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "subject": "sdkpy-rejected", "datacontenttype": "application/json", "schemaversion": 1,
        "data": {"identifier": "rejected@example.com", "failure_reason": "bad_password", "ip": "81.2.69.142"},
    }
    if breakage == "no type":
        del event["type"]
    else:
        event["data"]["ip"] = "999.1.2.3"
    producer = Producer({"bootstrap.servers": env("AUTHTRAIL_KAFKA_BROKERS"), "enable.idempotence": True,
                         "acks": "all"})
    producer.produce(env("AUTHTRAIL_RAW_TOPIC"), value=json.dumps(event).encode(), key=b"sdkpy-rejected")
    assert producer.flush(30) == 0
    rejection = consume(env("AUTHTRAIL_REJECTED_TOPIC"),
                        lambda r: r.get("id") == event_id or event_id in str(r.get("value", "")))
    assert rejection["field"] == field, rejection
    assert rejection["reason"]
    assert rejection["topic"] == env("AUTHTRAIL_RAW_TOPIC")


# ---------------------------------------------------------------- partitioning


def test_kafka_publisher_places_keys_like_the_java_partitioner() -> None:
    """events/partition-vectors.tsv: the partition each key must land in (12 partitions)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from conftest import REPO

    vectors = []
    for line in (REPO / "events" / "partition-vectors.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, partitions, partition = line.split("\t")
            vectors.append((key, int(partitions), int(partition)))
    counts = {p for _, p, _ in vectors}
    brokers = env("AUTHTRAIL_KAFKA_BROKERS")
    admin = AdminClient({"bootstrap.servers": brokers})
    topics = {n: f"sdk-python-partitions-{n}-{uuid.uuid4().hex[:8]}" for n in counts}
    for future in admin.create_topics([NewTopic(t, n, 1) for n, t in topics.items()]).values():
        future.result(30)
    try:
        producer = Producer(KafkaPublisher.producer_config(brokers))
        landed: Dict[str, int] = {}

        def report(key: str) -> Callable[[Any, Any], None]:
            def record(error: Any, message: Any) -> None:
                assert error is None, error
                landed[key] = message.partition()
            return record

        def partition_count(topic: str) -> int:
            return len(producer.list_topics(topic, timeout=5).topics[topic].partitions)

        for partitions, topic in topics.items():
            # Metadata of a new topic can lag: produce once it lists every partition.
            wait_for(f"metadata of {topic}",
                     lambda: True if partition_count(topic) == partitions else None, 30)
        for key, partitions, _ in vectors:
            producer.produce(topics[partitions], value=b"{}", key=key.encode("utf-8"), on_delivery=report(key))
        assert producer.flush(30) == 0
        assert {k: landed[k] for k, _, _ in vectors} == {k: p for k, _, p in vectors}
    finally:
        admin.delete_topics(list(topics.values()))
