"""Builders: every example of the contract is rebuilt from plain arguments, and what builders
refuse."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Dict

import pytest

import authtrail
from authtrail import EventValidationError
from authtrail.events import BUILDERS, build_event
from authtrail.schemas import event_types
from authtrail.timefmt import format_time, parse_time
from authtrail.validation import ENGINES, schema_faults, validate_event
from conftest import AUTHTRAIL_ONLY, publishable_examples

EXAMPLES = publishable_examples()
TIME_FIELDS = ("expires_at", "until")


def builder_arguments(example: Dict[str, Any]) -> Dict[str, Any]:
    """Plain arguments for the example's builder: envelope values and the data members, with
    times as aware datetimes (so the builder's formatting is tested too)."""
    kwargs: Dict[str, Any] = dict(example["data"])
    for name in TIME_FIELDS:
        if name in kwargs:
            kwargs[name] = parse_time(kwargs[name])
    kwargs.update(
        source=example["source"],
        event_id=uuid.UUID(example["id"]),
        time=parse_time(example["time"]),
    )
    if "subject" in example:
        kwargs["subject"] = example["subject"]
    return kwargs


def test_every_publishable_type_has_a_builder_and_an_example() -> None:
    publishable = set(event_types()) - AUTHTRAIL_ONLY
    assert set(BUILDERS) == publishable
    assert {e["type"] for _, e in EXAMPLES} == publishable


@pytest.mark.parametrize("name,example", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_builder_rebuilds_the_example(name: str, example: Dict[str, Any]) -> None:
    built = BUILDERS[example["type"]](**builder_arguments(example))
    assert json.loads(json.dumps(built)) == example
    assert "publisher" not in built


@pytest.mark.parametrize("engine", ["jsonschema", "builtin"])
@pytest.mark.parametrize("name,example", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_validates_against_the_bundled_schema(name: str, example: Dict[str, Any], engine: str) -> None:
    assert schema_faults(example, engine) == []
    validate_event(example, engine=engine)


def test_defaults_fresh_id_now_and_constant_attributes() -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    a = authtrail.session_logged_out(subject="u-1", session_id="s-1", source="/services/x")
    b = authtrail.session_logged_out(subject="u-1", session_id="s-1", source="/services/x")
    assert a["id"] != b["id"] and uuid.UUID(a["id"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z", a["time"])
    assert before <= parse_time(a["time"]) <= datetime.now(timezone.utc)
    assert (a["specversion"], a["schemaversion"], a["datacontenttype"]) == ("1.0", 1, "application/json")
    assert a["source"] == "/services/x" and "publisher" not in a


def test_source_from_default_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHTRAIL_SOURCE", raising=False)
    with pytest.raises(authtrail.ConfigurationError):
        authtrail.password_changed(subject="u-1")
    monkeypatch.setenv("AUTHTRAIL_SOURCE", "/services/env")
    assert authtrail.password_changed(subject="u-1")["source"] == "/services/env"
    authtrail.set_default_source("/services/default")
    try:
        assert authtrail.password_changed(subject="u-1")["source"] == "/services/default"
    finally:
        authtrail.set_default_source(None)


def test_time_formatting() -> None:
    t = datetime(2026, 11, 24, 9, 15, 2, tzinfo=timezone.utc)
    assert format_time(t) == "2026-11-24T09:15:02Z"
    assert format_time(t.replace(microsecond=120000)) == "2026-11-24T09:15:02.120Z"
    assert format_time(t.replace(microsecond=123456)) == "2026-11-24T09:15:02.123456Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 24, 11, 15, 2, tzinfo=plus_two)) == "2026-11-24T09:15:02Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 11, 24, 9, 15, 2))  # naive


LOGIN = dict(subject="u-1", session_id="sess_1", login_method="password", source="/s",
             time="2026-11-24T09:00:00Z", expires_at="2026-11-24T21:00:00Z")


@pytest.mark.parametrize("change,field", [
    ({"expires_at": "2026-11-24T08:00:00Z"}, "data.expires_at"),
    ({"login_method": "magic"}, "data.login_method"),
    ({"ip": "300.1.2.3"}, "data.ip"),
    ({"session_id": ""}, "data.session_id"),
    ({"session_id": "has space"}, "data.session_id"),
    ({"refresh_token_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}, "data.refresh_token_id"),
    ({"user_agent": "Mozilla\u202e"}, "data.user_agent"),
    ({"user_agent": "x" * 2049}, "data.user_agent"),
    ({"identifier": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}, "data.identifier"),
    ({"roles": ["user", " "]}, "data.roles[1]"),
    ({"time": "yesterday"}, "time"),
    ({"subject": ""}, "subject"),
])
def test_login_succeeded_refuses(change: Dict[str, Any], field: str) -> None:
    with pytest.raises(EventValidationError) as error:
        authtrail.login_succeeded(**{**LOGIN, **change})
    assert error.value.field == field


def test_rules_between_fields() -> None:
    with pytest.raises(EventValidationError, match="subject: may be absent only"):
        authtrail.login_failed(identifier="a@b.c", failure_reason="bad_password", source="/s")
    unknown = authtrail.login_failed(identifier="a@b.c", failure_reason="unknown_user", source="/s")
    assert "subject" not in unknown
    with pytest.raises(EventValidationError, match="data.refresh_token_id: must differ"):
        authtrail.token_refreshed(subject="u", session_id="s", refresh_token_id="rt1",
                                  previous_refresh_token_id="rt1",
                                  expires_at=datetime.now(timezone.utc) + timedelta(hours=1), source="/s")
    with pytest.raises(EventValidationError, match="data.session_id: is required for scope one"):
        authtrail.session_revoked(subject="u", scope="one", reason="r", revoked_by="system", source="/s")
    authtrail.session_revoked(subject="u", scope="all", reason="r", revoked_by="system", source="/s")
    with pytest.raises(EventValidationError, match="data.until: must be after"):
        authtrail.account_locked(subject="u", reason="r", until="2000-01-01T00:00:00Z", source="/s")
    with pytest.raises(EventValidationError, match="data.channel"):
        authtrail.otp_sent(subject="u", channel="pigeon", source="/s")


@pytest.mark.parametrize("engine", ENGINES)
def test_secrets_and_publisher_are_refused_whatever_the_engine(engine: str) -> None:
    good = authtrail.login_succeeded(**LOGIN)
    cases = {
        "data.password": dict(good, data=dict(good["data"], password="hunter2")),
        "data.geo.token": dict(good, data=dict(good["data"], geo={"token": "x"})),
        "publisher": dict(good, publisher="api-key:me"),
        "extension": dict(good, extension="x"),
        "(attribute)": dict(good, **{"Bad Name": 1}),
        "data.sesion_id": dict(good, data=dict(good["data"], sesion_id="x")),
        "specversion": dict(good, specversion="0.3"),
        "schemaversion": dict(good, schemaversion=2),
        "data.geo.country_code": dict(good, data=dict(good["data"], geo={"country_code": "gb"})),
    }
    for field, event in cases.items():
        with pytest.raises(EventValidationError) as error:
            validate_event(event, engine=engine)
        assert error.value.field == field, (field, str(error.value))
        assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("name,example", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_engines_agree_on_broken_examples(name: str, example: Dict[str, Any]) -> None:
    """Each required data member removed, and an unknown one added: both engines name it."""
    for member in list(example["data"]):
        broken = dict(example, data={k: v for k, v in example["data"].items() if k != member})
        js, builtin = schema_faults(broken, "jsonschema"), schema_faults(broken, "builtin")
        assert bool(js) == bool(builtin), member
        if js:
            assert js[0][0] == builtin[0][0] == f"data.{member}"
    extra = dict(example, data=dict(example["data"], surprise=1))
    assert schema_faults(extra, "jsonschema")[0][0] == schema_faults(extra, "builtin")[0][0] == "data.surprise"


def test_build_event_drops_none_and_keeps_order() -> None:
    event = build_event("password.changed", {"changed_by": None}, subject="u", source="/s")
    assert event["data"] == {}
    assert list(event) == ["specversion", "id", "source", "type", "time", "subject",
                           "datacontenttype", "schemaversion", "data"]
