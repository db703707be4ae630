"""The Django integration with an in-memory publisher: signals, token hooks, middleware."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory, override_settings

from authtrail import EventValidationError, SessionInfo, TransportError, django_session_id, jwt_session_id
from authtrail.django import conf
from authtrail.django.request import client_ip, safe_text
from authtrail.django.tokens import token_issued, token_logged_out, token_refreshed
from authtrail.timefmt import parse_time
from conftest import IPHONE_SAFARI, LONDON_IP

PASSWORD = "correct horse battery staple"


def make_user(active: bool = True) -> Any:
    name = f"user-{uuid.uuid4().hex[:10]}"
    return get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD, is_active=active)


def browser() -> Client:
    return Client(REMOTE_ADDR=LONDON_IP, HTTP_USER_AGENT=IPHONE_SAFARI)


def post_login(client: Client, username: str, password: str) -> Any:
    return client.post("/login", json.dumps({"username": username, "password": password}),
                       content_type="application/json")


def test_login_publishes_login_succeeded_with_a_derived_session_id(memory_publisher: Any) -> None:
    user, client = make_user(), browser()
    answer = post_login(client, user.username, PASSWORD)
    assert answer.status_code == 200
    (event,) = memory_publisher.events
    key = client.session.session_key
    assert event["type"] == "login.succeeded"
    assert event["subject"] == f"sdkpy-{user.username}"
    assert event["source"] == "/services/django-tests"
    data = event["data"]
    assert data["session_id"] == django_session_id(key) == answer.json()["session_id"]
    assert data["session_id"].startswith("dj_") and len(data["session_id"]) == 35
    assert data["ip"] == LONDON_IP and data["user_agent"] == IPHONE_SAFARI
    assert data["identifier"] == user.username and data["login_method"] == "password"
    assert parse_time(data["expires_at"]) > parse_time(event["time"]) + timedelta(days=13)
    assert key not in json.dumps(event)  # the session key is a credential: never published


def test_logout_publishes_session_logged_out_for_the_same_session(memory_publisher: Any) -> None:
    user, client = make_user(), browser()
    post_login(client, user.username, PASSWORD)
    client.post("/logout")
    login_event, logout_event = memory_publisher.events
    assert logout_event["type"] == "session.logged_out"
    assert logout_event["subject"] == login_event["subject"]
    assert logout_event["data"] == {"session_id": login_event["data"]["session_id"]}


def test_failed_login_never_carries_the_password(memory_publisher: Any) -> None:
    user, client = make_user(), browser()
    wrong = "hunter2-wrong-" + uuid.uuid4().hex
    assert post_login(client, user.username, wrong).status_code == 401
    (event,) = memory_publisher.events
    assert event["type"] == "login.failed"
    assert event["subject"] == f"sdkpy-{user.username}"
    assert event["data"]["failure_reason"] == "bad_password"
    assert event["data"]["identifier"] == user.username
    assert event["data"]["ip"] == LONDON_IP
    assert wrong not in json.dumps(event) and PASSWORD not in json.dumps(event)


def test_failed_login_of_unknown_and_disabled_users(memory_publisher: Any) -> None:
    post_login(browser(), "Nobody@Example.com", "x")
    disabled = make_user(active=False)
    post_login(browser(), disabled.username, PASSWORD)
    unknown, inactive = memory_publisher.events
    assert "subject" not in unknown and unknown["data"]["failure_reason"] == "unknown_user"
    assert unknown["data"]["identifier"] == "Nobody@Example.com"
    assert inactive["data"]["failure_reason"] == "disabled"
    assert inactive["subject"] == f"sdkpy-{disabled.username}"


def test_hostile_identifier_and_user_agent_are_cleaned(memory_publisher: Any) -> None:
    client = Client(REMOTE_ADDR="not-an-ip", HTTP_USER_AGENT="evil\u202eagent\x00")
    post_login(client, "ad\u202emin", "x")
    (event,) = memory_publisher.events
    assert event["data"]["identifier"] == "admin"
    assert event["data"]["user_agent"] == "evilagent"
    assert "ip" not in event["data"]


def test_publishing_errors_do_not_break_logins_unless_asked(memory_publisher: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    user = make_user()
    broken = dict(SOURCE="/services/django-tests", PUBLISHER={"BACKEND": "http", "OPTIONS": {"url": "http://127.0.0.1:9", "api_key": "k",
                                                            "max_attempts": 1, "timeout": 0.5}})
    with override_settings(AUTHTRAIL=broken):
        assert post_login(browser(), user.username, PASSWORD).status_code == 200
    assert "event not published" in caplog.text
    with override_settings(AUTHTRAIL=dict(broken, RAISE_ERRORS=True)):
        with pytest.raises(TransportError):
            post_login(browser(), user.username, PASSWORD)


@pytest.mark.parametrize("trusted,remote,forwarded,expected", [
    ([], "10.0.0.2", "203.0.113.9", "10.0.0.2"),
    (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
    (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
    (["10.0.0.0/8"], "192.0.2.1", "203.0.113.9", "192.0.2.1"),  # not from a trusted proxy
    (["10.0.0.0/8"], "10.0.0.2", "garbage", None),
    (1, "10.0.0.2", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
    (2, "10.0.0.2", "198.51.100.1, 203.0.113.9", "198.51.100.1"),
    ([], "[2001:db8::1]", "", "2001:db8::1"),
])
def test_client_ip(trusted: Any, remote: str, forwarded: str, expected: Optional[str]) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(AUTHTRAIL={"SOURCE": "/s", "PUBLISHER": "memory", "TRUSTED_PROXIES": trusted}):
        assert client_ip(request) == expected


def test_safe_text_drops_tokens() -> None:
    assert safe_text("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln") is None
    assert safe_text("x" * 5000) == "x" * 2048


# ---------------------------------------------------------------- token hooks


def test_token_hooks(memory_publisher: Any) -> None:
    user = make_user()
    request = RequestFactory().post("/token", REMOTE_ADDR=LONDON_IP, HTTP_USER_AGENT=IPHONE_SAFARI)
    soon = datetime.now(timezone.utc) + timedelta(days=1)
    issued = token_issued(request, user, jti="3f0c1e9a7b2d", expires_at=soon)
    refreshed = token_refreshed(request, user, issued["data"]["session_id"], "3f0c1e9a7b2d", "9a8b7c6d", soon)
    ended = token_logged_out(request, user, issued["data"]["session_id"])
    assert memory_publisher.events == [issued, refreshed, ended]
    assert issued["data"]["session_id"] == jwt_session_id("3f0c1e9a7b2d")
    assert issued["data"]["refresh_token_id"] == "3f0c1e9a7b2d"
    assert refreshed["type"] == "token.refreshed"
    assert refreshed["data"]["previous_refresh_token_id"] == "3f0c1e9a7b2d"
    assert refreshed["data"]["refresh_token_id"] == "9a8b7c6d"
    assert ended["type"] == "session.logged_out"
    with pytest.raises(EventValidationError):  # a raw token is refused (RAISE_ERRORS is on in tests)
        token_issued(request, user, jti="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", expires_at=soon)


def test_simplejwt_views(memory_publisher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rest_framework_simplejwt")
    from rest_framework.test import APIRequestFactory
    from rest_framework_simplejwt.tokens import RefreshToken

    from authtrail.django.simplejwt import AuthtrailTokenObtainPairView, AuthtrailTokenRefreshView

    user = make_user()
    factory = APIRequestFactory(REMOTE_ADDR=LONDON_IP, HTTP_USER_AGENT=IPHONE_SAFARI)
    obtain = AuthtrailTokenObtainPairView.as_view()(
        factory.post("/token", {"username": user.username, "password": PASSWORD}, format="json"))
    assert obtain.status_code == 200, obtain.data
    refresh = RefreshToken(obtain.data["refresh"])
    (login,) = memory_publisher.events
    assert login["data"]["session_id"] == refresh["sid"] == jwt_session_id(refresh["jti"])
    assert login["data"]["refresh_token_id"] == refresh["jti"]
    assert obtain.data["refresh"] not in json.dumps(login) and obtain.data["access"] not in json.dumps(login)

    def refresh_with(token: str) -> Any:
        answer = AuthtrailTokenRefreshView.as_view()(
            factory.post("/token/refresh", {"refresh": token}, format="json"))
        assert answer.status_code == 200, answer.data
        return answer

    refresh_with(obtain.data["refresh"])  # no rotation (simplejwt's default)
    activity = memory_publisher.events[-1]
    assert activity["type"] == "session.activity"
    assert activity["data"]["session_id"] == login["data"]["session_id"]
    assert activity["subject"] == login["subject"]  # the user, resolved from the id claim

    # simplejwt's serializers hold their settings object: switch rotation on there.
    import rest_framework_simplejwt.serializers as jwt_serializers
    monkeypatch.setattr(jwt_serializers.api_settings, "ROTATE_REFRESH_TOKENS", True)
    rotated = refresh_with(obtain.data["refresh"])
    event = memory_publisher.events[-1]
    assert event["type"] == "token.refreshed"
    assert event["data"]["session_id"] == login["data"]["session_id"]
    assert event["data"]["previous_refresh_token_id"] == refresh["jti"]
    assert event["data"]["refresh_token_id"] == RefreshToken(rotated.data["refresh"])["jti"]
    assert RefreshToken(rotated.data["refresh"])["sid"] == login["data"]["session_id"]

    bad = AuthtrailTokenObtainPairView.as_view()(
        factory.post("/token", {"username": user.username, "password": "wrong-pw-123"}, format="json"))
    assert bad.status_code == 401
    assert memory_publisher.events[-1]["type"] == "login.failed"
    assert "wrong-pw-123" not in json.dumps(memory_publisher.events)


# ---------------------------------------------------------------- middleware


class FakeIntrospector:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: List[str] = []

    def session(self, session_id: str) -> SessionInfo:
        self.asked.append(session_id)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def middleware_settings(introspector: Any, **active: Any) -> Dict[str, Any]:
    from django.conf import settings

    return {
        "MIDDLEWARE": list(settings.MIDDLEWARE) + ["authtrail.django.middleware.ActiveSessionMiddleware"],
        "AUTHTRAIL": {"SOURCE": "/services/django-tests", "PUBLISHER": "memory",
                      "SUBJECT": "sdk_testapp.subject_for", "RAISE_ERRORS": True,
                      "INTROSPECTION": lambda: introspector,
                      "ACTIVE_SESSION": {"GRACE_SECONDS": 0, **active}},
    }


def test_middleware_logs_out_inactive_sessions_without_publishing() -> None:
    intro = FakeIntrospector(SessionInfo(active=False))
    with override_settings(**middleware_settings(intro)):
        user, client = make_user(), browser()
        post_login(client, user.username, PASSWORD)
        sid = client.session["_authtrail_sid"]
        assert client.get("/whoami").json()["authenticated"] is False
        assert intro.asked[-1] == sid
        assert [e["type"] for e in conf.publisher().events] == ["login.succeeded"]


def test_middleware_keeps_active_sessions_and_can_refuse() -> None:
    intro = FakeIntrospector(SessionInfo(active=True, session_id="x", user="u"))
    with override_settings(**middleware_settings(intro)):
        user, client = make_user(), browser()
        post_login(client, user.username, PASSWORD)
        assert client.get("/whoami").json()["authenticated"] is True
        intro.answer = SessionInfo(active=False)
    with override_settings(**middleware_settings(intro, ON_INACTIVE="refuse")):
        answer = client.get("/whoami")
        assert answer.status_code == 401 and answer["Content-Type"] == "application/problem+json"


def test_middleware_grace_period_and_failing_open_or_closed() -> None:
    intro = FakeIntrospector(TransportError("down"))
    with override_settings(**middleware_settings(intro, GRACE_SECONDS=3600)):
        user, client = make_user(), browser()
        post_login(client, user.username, PASSWORD)
        assert client.get("/whoami").json()["authenticated"] is True
        assert intro.asked == []  # within the grace period nobody is asked
    with override_settings(**middleware_settings(intro, FAIL_OPEN=True)):
        assert client.get("/whoami").json()["authenticated"] is True  # fail open, when asked to
    with override_settings(**middleware_settings(intro)):
        assert client.get("/whoami").json()["authenticated"] is False  # fail closed by default


@pytest.mark.parametrize("value", [
    "memory",
    "authtrail.publishers.InMemoryPublisher",
    {"BACKEND": "memory", "OPTIONS": {"validate": True}},
    {"BACKEND": "authtrail.publishers.HttpPublisher", "OPTIONS": {"url": "http://x", "api_key": "k"}},
])
def test_publisher_setting_forms(value: Any) -> None:
    from authtrail import Publisher
    from authtrail.publishers import InMemoryPublisher

    with override_settings(AUTHTRAIL={"SOURCE": "/s", "PUBLISHER": value}):
        assert isinstance(conf.publisher(), Publisher)
    instance = InMemoryPublisher()
    with override_settings(AUTHTRAIL={"SOURCE": "/s", "PUBLISHER": instance}):
        assert conf.publisher() is instance
    with override_settings(AUTHTRAIL={"SOURCE": "/s", "PUBLISHER": InMemoryPublisher}):
        assert isinstance(conf.publisher(), InMemoryPublisher)
