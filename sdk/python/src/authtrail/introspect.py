"""Asking authtrail whether a session is active: ``POST {url}/api/v1/sessions/introspect``.

The answer is exactly ``{"active": false}`` for anything not active now (unknown, expired,
idle, revoked, logged out), or ``{"active": true, "session_id", "user", "expires_at", ...}``.

Caching (``cache_seconds > 0``): *active* answers are kept that long (never past the session's
``expires_at``), so a revocation takes effect within ``cache_seconds``. Inactive answers are not
cached: a session that was just announced becomes active as soon as authtrail projected it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Optional, Tuple

from .timefmt import parse_time, utc_now
from .transport import JsonClient, RetryPolicy

#: Path of the introspection endpoint.
INTROSPECT_PATH = "/api/v1/sessions/introspect"


@dataclass(frozen=True)
class SessionInfo:
    """An introspection answer. Only ``active`` is set for an inactive session."""

    active: bool
    session_id: Optional[str] = None
    #: The user id (the events' ``subject``).
    user: Optional[str] = None
    #: When the session stops being active without further events.
    expires_at: Optional[datetime] = None
    created_at: Optional[datetime] = None
    last_activity_at: Optional[datetime] = None
    login_method: Optional[str] = None
    roles: Tuple[str, ...] = ()
    trusted_device: bool = False
    suspicious: bool = False
    #: The answer as received.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, answer: Mapping[str, Any]) -> "SessionInfo":
        """Reads the endpoint's JSON answer."""
        if answer.get("active") is not True:
            return cls(active=False, raw=dict(answer))

        def when(name: str) -> Optional[datetime]:
            value = answer.get(name)
            return parse_time(value) if isinstance(value, str) else None

        roles = answer.get("roles")
        return cls(
            active=True,
            session_id=answer.get("session_id"),
            user=answer.get("user"),
            expires_at=when("expires_at"),
            created_at=when("created_at"),
            last_activity_at=when("last_activity_at"),
            login_method=answer.get("login_method"),
            roles=tuple(roles) if isinstance(roles, list) else (),
            trusted_device=bool(answer.get("trusted_device")),
            suspicious=bool(answer.get("suspicious")),
            raw=dict(answer),
        )


INACTIVE = SessionInfo(active=False, raw={"active": False})


class Introspector:
    """Checks sessions with authtrail, authenticated with an API key holding the
    ``introspect`` scope (or a service JWT)."""

    def __init__(
        self,
        url: str,
        api_key: Optional[str] = None,
        *,
        bearer_token: Optional[str] = None,
        timeout: float = 2.0,
        max_attempts: int = 2,
        cache_seconds: float = 0.0,
        cache_size: int = 10_000,
        opener: Optional[urllib.request.OpenerDirector] = None,
    ) -> None:
        self._client = JsonClient(
            url, api_key=api_key, bearer_token=bearer_token, timeout=timeout,
            retry=RetryPolicy(max_attempts=max_attempts, backoff=0.1, max_backoff=0.5),
            opener=opener,
        )
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: "OrderedDict[str, Tuple[float, SessionInfo]]" = OrderedDict()
        self._lock = threading.Lock()

    def session(self, session_id: str) -> SessionInfo:
        """The session's introspection (:data:`INACTIVE` when it is not active).

        Raises :class:`~authtrail.errors.ProblemError` or
        :class:`~authtrail.errors.TransportError` when authtrail cannot answer; callers decide
        whether that fails open or closed.
        """
        cached = self._cached(session_id)
        if cached is not None:
            return cached
        body = json.dumps({"session_id": session_id}).encode("utf-8")
        answer = self._client.post(INTROSPECT_PATH, body, "application/json", retry=True)
        info = SessionInfo.from_json(answer if isinstance(answer, Mapping) else {})
        if info.active:
            self._remember(session_id, info)
        return info

    def is_active(self, session_id: str) -> bool:
        """Whether the session is active now (see :meth:`session` for errors)."""
        return self.session(session_id).active

    def forget(self, session_id: Optional[str] = None) -> None:
        """Drops one cached answer, or all of them."""
        with self._lock:
            if session_id is None:
                self._cache.clear()
            else:
                self._cache.pop(session_id, None)

    def _cached(self, session_id: str) -> Optional[SessionInfo]:
        if self._cache_seconds <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(session_id)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._cache[session_id]
                return None
            self._cache.move_to_end(session_id)
            return entry[1]

    def _remember(self, session_id: str, info: SessionInfo) -> None:
        if self._cache_seconds <= 0:
            return
        ttl = self._cache_seconds
        if info.expires_at is not None:
            ttl = min(ttl, (info.expires_at - utc_now()).total_seconds())
        if ttl <= 0:
            return
        with self._lock:
            self._cache[session_id] = (time.monotonic() + ttl, info)
            self._cache.move_to_end(session_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


__all__ = ["INACTIVE", "INTROSPECT_PATH", "Introspector", "SessionInfo"]
