"""Publishers against test doubles: what goes on the wire, and how failures surface."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

import authtrail
from authtrail import ConfigurationError, DeliveryError, EventValidationError, ProblemError, TransportError
from authtrail.publishers import HttpPublisher, InMemoryPublisher, KafkaPublisher, Publisher
from fakes import RecordingProducer, ScriptedServer, json_response

SOURCE = "/services/tests"


def login(subject: str = "user-1") -> Dict[str, Any]:
    return authtrail.login_succeeded(subject=subject, session_id="sess_1", login_method="password",
                                     expires_at="2099-01-01T00:00:00Z", source=SOURCE)


def unknown_user_failure() -> Dict[str, Any]:
    return authtrail.login_failed(identifier="Mallory@Example.COM", failure_reason="unknown_user",
                                  source=SOURCE)


def test_publishers_satisfy_the_protocol() -> None:
    for pub in (KafkaPublisher(producer=RecordingProducer()), HttpPublisher("http://x", "k"),
                InMemoryPublisher()):
        assert isinstance(pub, Publisher)


# ---------------------------------------------------------------- Kafka


def test_kafka_producer_config_is_idempotent_acks_all_murmur2() -> None:
    config = KafkaPublisher.producer_config("b:9092", {"linger.ms": 1})
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["partitioner"] == "murmur2_random"
    assert config["bootstrap.servers"] == "b:9092" and config["linger.ms"] == 1
    with pytest.raises(ConfigurationError):
        KafkaPublisher.producer_config("b:9092", {"acks": "1"})
    with pytest.raises(ConfigurationError):
        KafkaPublisher.producer_config("b:9092", {"enable.idempotence": False})
    with pytest.raises(ConfigurationError):
        KafkaPublisher.producer_config(None)


def test_kafka_message_key_value_and_header() -> None:
    producer = RecordingProducer()
    pub = KafkaPublisher(producer=producer, topic="raw")
    event, failure = login("user-7"), unknown_user_failure()
    pub.publish_many([event, failure])
    pub.flush(1)
    first, second = producer.sent
    assert first["topic"] == "raw" and first["key"] == b"user-7"
    assert json.loads(first["value"]) == event
    assert first["headers"] == [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    assert second["key"] == b"mallory@example.com"  # login.failed without subject: lower-cased identifier


def test_kafka_default_topic_is_the_raw_topic() -> None:
    assert KafkaPublisher(producer=RecordingProducer()).topic == "authtrail.raw"


def test_kafka_validates_the_whole_batch_before_sending() -> None:
    producer = RecordingProducer()
    bad = dict(login(), data={"session_id": "s"})
    with pytest.raises(EventValidationError):
        KafkaPublisher(producer=producer).publish_many([login(), bad])
    assert producer.sent == []


def test_kafka_delivery_errors_surface_on_flush_and_callback() -> None:
    seen = []
    pub = KafkaPublisher(producer=RecordingProducer(fail="Broker: Not enough in-sync replicas"),
                         on_delivery_error=lambda event_id, error: seen.append((event_id, error)))
    event = login()
    pub.publish(event)
    with pytest.raises(DeliveryError) as error:
        pub.flush(1)
    assert error.value.failures == [(event["id"], "Broker: Not enough in-sync replicas")]
    assert seen == error.value.failures
    pub.flush(1)  # reported once


def test_kafka_sync_mode_raises_from_publish() -> None:
    pub = KafkaPublisher(producer=RecordingProducer(fail="boom"), sync=True)
    with pytest.raises(DeliveryError):
        pub.publish(login())


# ---------------------------------------------------------------- HTTP

ACCEPTED = json_response(200, {"accepted": 1, "events": [{"id": "x", "partition": 0, "offset": 1}]})
PROBLEM = json_response(400, {"type": "about:blank", "title": "Invalid event", "status": 400,
                              "detail": "data.session_id: is required",
                              "errors": [{"index": 0, "field": "data.session_id", "reason": "is required"}]},
                        content_type="application/problem+json")


def test_http_single_event() -> None:
    with ScriptedServer([ACCEPTED]) as server:
        event = login()
        answer = HttpPublisher(server.url + "/", api_key="k3y").send(event)
    (request,) = server.requests
    assert request["path"] == "/v1/events"
    assert request["headers"]["content-type"] == "application/cloudevents+json"
    assert request["headers"]["x-api-key"] == "k3y"
    assert json.loads(request["body"]) == event
    assert answer["accepted"] == 1


def test_http_batches() -> None:
    with ScriptedServer([ACCEPTED]) as server:
        events = [login(f"u{i}") for i in range(5)]
        HttpPublisher(server.url, "k", batch_size=2).publish_many(events)
    assert [r["headers"]["content-type"] for r in server.requests] == ["application/cloudevents-batch+json"] * 3
    assert [e for r in server.requests for e in json.loads(r["body"])] == events


def test_http_problem_is_raised_with_its_body_and_not_retried() -> None:
    with ScriptedServer([PROBLEM]) as server:
        with pytest.raises(ProblemError) as error:
            HttpPublisher(server.url, "k", backoff=0).publish(login())
    assert len(server.requests) == 1
    assert error.value.status == 400 and not error.value.retryable
    assert error.value.problem["errors"][0]["field"] == "data.session_id"
    assert "data.session_id" in str(error.value)


def test_http_retries_5xx_with_the_same_event() -> None:
    unavailable = json_response(503, {"title": "Broker unavailable", "status": 503},
                                content_type="application/problem+json", headers={"Retry-After": "0"})
    with ScriptedServer([unavailable, unavailable, ACCEPTED]) as server:
        HttpPublisher(server.url, "k", backoff=0.01).publish(login())
    assert len(server.requests) == 3
    assert len({r["body"] for r in server.requests}) == 1  # same id: an idempotent retry


def test_http_gives_up_after_max_attempts() -> None:
    with ScriptedServer([json_response(500, {"title": "Internal", "status": 500})]) as server:
        with pytest.raises(ProblemError) as error:
            HttpPublisher(server.url, "k", max_attempts=2, backoff=0.01).publish(login())
    assert error.value.status == 500 and len(server.requests) == 2


def test_http_does_not_follow_redirects() -> None:
    with ScriptedServer([(307, {"Location": "http://127.0.0.1:9/v1/events"}, b"")]) as server:
        with pytest.raises(ProblemError) as error:
            HttpPublisher(server.url, "k").publish(login())
    assert error.value.status == 307


def test_http_connection_errors_are_transport_errors() -> None:
    with ScriptedServer([ACCEPTED]) as server:
        url = server.url
    with pytest.raises(TransportError):
        HttpPublisher(url, "k", max_attempts=2, backoff=0.01, timeout=1).publish(login())


def test_http_needs_one_credential() -> None:
    with pytest.raises(ConfigurationError):
        HttpPublisher("http://x")
    with pytest.raises(ConfigurationError):
        HttpPublisher("ftp://x", "k")
