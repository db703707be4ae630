"""Conformance with authtrail itself: builder outputs and the contract's examples go through
``$AUTHTRAIL_BIN validate`` (NDJSON in; one canonical event per valid line out, exit 1 with
the errors on stderr for invalid lines), and the canonical forms must be equal."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List, Tuple

import pytest

import authtrail
from authtrail.events import BUILDERS
from conftest import publishable_examples
from test_events import builder_arguments

BIN = os.environ.get("AUTHTRAIL_BIN")
pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not BIN, reason="AUTHTRAIL_BIN is not set"),
]
EXAMPLES = publishable_examples()


def validate(events: List[Dict[str, Any]]) -> Tuple[int, List[Dict[str, Any]], str]:
    """Runs ``authtrail validate`` on the events as NDJSON."""
    ndjson = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
    # authtrail reads AUTHTRAIL_* variables as configuration (AUTHTRAIL_API_KEY would be the
    # unknown key `api.key`): the test environment's must not reach it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHTRAIL_")}
    done = subprocess.run([str(BIN), "validate"], input=ndjson.encode("utf-8"), env=env,
                          capture_output=True, timeout=60, check=False)
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode == 2 and "unrecognized subcommand" in stderr:
        pytest.skip("this authtrail build has no `validate` subcommand yet")
    lines = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines() if line.strip()]
    return done.returncode, lines, stderr


def test_builders_and_examples_have_the_same_canonical_form() -> None:
    examples = [e for _, e in EXAMPLES]
    built = [BUILDERS[e["type"]](**builder_arguments(e)) for e in examples]
    code_examples, canonical_examples, err = validate(examples)
    assert code_examples == 0, err
    code_built, canonical_built, err = validate(built)
    assert code_built == 0, err
    assert len(canonical_built) == len(examples)
    assert canonical_built == canonical_examples


def test_fresh_builder_events_are_valid_for_authtrail() -> None:
    events = [
        authtrail.login_succeeded(subject="u-1", session_id=authtrail.django_session_id("k" * 32),
                                  login_method="password", expires_at="2099-01-01T00:00:00.5Z",
                                  ip="2001:db8::1", user_agent="curl/8", roles=["user"], source="/s"),
        authtrail.login_failed(identifier="X@Example.com", failure_reason="unknown_user", source="/s"),
        authtrail.session_revoked(subject="u-1", scope="all", reason="r", revoked_by="system", source="/s"),
        authtrail.password_changed(subject="u-1", source="/s"),
    ]
    code, canonical, err = validate(events)
    assert code == 0, err
    assert [c["id"] for c in canonical] == [e["id"] for e in events]
    assert all("publisher" not in c for c in canonical)


def test_authtrail_and_the_sdk_refuse_the_same_events() -> None:
    good = authtrail.session_logged_out(subject="u-1", session_id="s-1", source="/s")
    broken = [
        dict(good, data={}),
        dict(good, data={"session_id": "s-1", "password": "x"}),
        dict(good, data={"session_id": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}),
        dict(good, data={"session_id": "s-1", "sesion_id": "s-1"}),
        dict(good, time="not a time"),
        dict(good, specversion="0.3"),
    ]
    for event in broken:
        with pytest.raises(authtrail.EventValidationError) as sdk_error:
            authtrail.validate_event(event)
        code, canonical, err = validate([event])
        assert code == 1 and canonical == [], err
        # Both name the same member (authtrail says `data: missing field `session_id``
        # where the SDK says `data.session_id: is required`).
        assert sdk_error.value.field.split(".")[-1] in err, (sdk_error.value.field, err)


def test_publisher_attribute_is_refused_by_the_sdk_though_the_parser_reads_it() -> None:
    """`publisher` is authtrail's stamp: the parser reads it (it is in the log), the HTTP intake
    refuses it, and the SDK never sends it."""
    event = dict(authtrail.password_changed(subject="u-1", source="/s"), publisher="api-key:me")
    with pytest.raises(authtrail.EventValidationError, match="publisher"):
        authtrail.validate_event(event)
    code, canonical, _ = validate([event])
    assert code == 0 and canonical[0]["publisher"] == "api-key:me"
