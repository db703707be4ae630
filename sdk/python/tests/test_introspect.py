"""Introspector against a scripted server."""

from __future__ import annotations

import json

from authtrail import Introspector
from fakes import ScriptedServer, json_response

ACTIVE = {"active": True, "session_id": "dj_1", "user": "u-1", "expires_at": "2099-01-01T00:00:00Z",
          "created_at": "2026-01-01T00:00:00Z", "last_activity_at": "2026-01-01T00:00:00Z",
          "login_method": "password", "roles": ["user"], "trusted_device": False, "suspicious": False}


def test_active_and_inactive_answers() -> None:
    with ScriptedServer([json_response(200, ACTIVE), json_response(200, {"active": False})]) as server:
        intro = Introspector(server.url, "k")
        info = intro.session("dj_1")
        assert info.active and info.user == "u-1" and info.roles == ("user",)
        assert info.expires_at is not None and info.expires_at.year == 2099
        assert not intro.is_active("dj_2")
    first = server.requests[0]
    assert first["path"] == "/api/v1/sessions/introspect"
    assert first["headers"]["x-api-key"] == "k"
    assert json.loads(first["body"]) == {"session_id": "dj_1"}


def test_cache_keeps_active_answers_only() -> None:
    with ScriptedServer([json_response(200, {"active": False}), json_response(200, ACTIVE)]) as server:
        intro = Introspector(server.url, "k", cache_seconds=60)
        assert not intro.is_active("dj_1")
        assert intro.is_active("dj_1")
        assert intro.is_active("dj_1")
        assert len(server.requests) == 2
        intro.forget("dj_1")
        assert intro.is_active("dj_1")
        assert len(server.requests) == 3
