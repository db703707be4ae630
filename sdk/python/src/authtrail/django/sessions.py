"""The authtrail id of a Django session, and what the integration keeps in the session."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Optional

from ..ids import django_session_id

#: Session key under which the session's authtrail id is kept (set at login).
SESSION_ID_KEY = "_authtrail_sid"
#: Session key under which the login time (Unix seconds) is kept.
LOGIN_AT_KEY = "_authtrail_login_at"


def start(request: Any) -> str:
    """Assigns the request's session its authtrail id at login and returns it.

    The id is :func:`~authtrail.ids.django_session_id` of the session key (saving the session
    first when it has none yet). It is stored in the session, so it stays the same when the key
    is rotated later (``update_session_auth_hash``, ``cycle_key``) and with backends whose key
    changes on every save (signed cookies).
    """
    session = request.session
    if not session.session_key:
        session.save()
    sid = django_session_id(session.session_key)
    session[SESSION_ID_KEY] = sid
    session[LOGIN_AT_KEY] = time.time()
    return sid


def current_session_id(request: Any) -> Optional[str]:
    """The authtrail id of the request's session, or ``None`` when the session was not
    announced to authtrail (e.g. it predates the integration, or nobody logged in)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    sid = session.get(SESSION_ID_KEY)
    return sid if isinstance(sid, str) and sid else None


def login_age(request: Any) -> Optional[float]:
    """Seconds since the session's login was announced, or ``None`` if unknown."""
    session = getattr(request, "session", None)
    started = session.get(LOGIN_AT_KEY) if session is not None else None
    if not isinstance(started, (int, float)):
        return None
    return max(time.time() - float(started), 0.0)


def expiry(request: Any) -> datetime:
    """When the session expires, aware in UTC (``get_expiry_date``; naive values, with
    ``USE_TZ = False``, are local time)."""
    when: datetime = request.session.get_expiry_date()
    if when.tzinfo is None:
        when = when.astimezone()  # naive local time -> aware
    return when.astimezone(timezone.utc)
