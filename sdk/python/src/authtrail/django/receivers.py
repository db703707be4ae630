"""Receivers for Django's authentication signals.

- ``user_logged_in`` -> ``login.succeeded`` (session id: see :mod:`authtrail.django.sessions`);
- ``user_logged_out`` -> ``session.logged_out`` (for sessions announced at login);
- ``user_login_failed`` -> ``login.failed``: the identifier is the username field of the
  credentials Django passes (already masked); nothing else of them — the password least of all —
  is ever read. With ``LOOKUP_FAILED_USERS`` the user is looked up to tell ``bad_password``
  (subject set), ``disabled`` (inactive user) and ``unknown_user`` (no subject) apart.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Tuple

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from .. import events
from . import conf, identity, sessions
from .request import client_ip, identifier as clean_identifier, user_agent

log = logging.getLogger("authtrail")

#: Set on a request to log the user out without publishing ``session.logged_out`` (used when
#: authtrail itself ended the session).
SKIP_LOGOUT_EVENT = "_authtrail_skip_logout_event"


def on_user_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Publishes ``login.succeeded`` for a ``django.contrib.auth.login``."""
    if request is None or getattr(request, "session", None) is None:
        return
    session_id = sessions.start(request)
    conf.emit(lambda: events.login_succeeded(
        subject=identity.subject(user),
        session_id=session_id,
        login_method=identity.login_method(request),
        expires_at=sessions.expiry(request),
        identifier=clean_identifier(identity.identifier(user)),
        ip=client_ip(request),
        user_agent=user_agent(request),
        device_id=identity.device_id(request),
        roles=identity.roles(user),
        source=conf.source(),
    ))


def on_user_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Publishes ``session.logged_out`` for a ``django.contrib.auth.logout``."""
    if request is None or user is None or getattr(request, SKIP_LOGOUT_EVENT, False):
        return
    session_id = sessions.current_session_id(request)
    if session_id is None:
        log.debug("authtrail: logout of a session that was never announced; nothing published")
        return
    conf.emit(lambda: events.session_logged_out(
        subject=identity.subject(user), session_id=session_id, source=conf.source()))


def _typed_identifier(credentials: Mapping[str, Any]) -> Optional[str]:
    field = getattr(get_user_model(), "USERNAME_FIELD", "username")
    for name in (field, "username", "email"):
        value = credentials.get(name)
        if isinstance(value, str) and value.strip():
            return clean_identifier(value)
    return None


def _failed_user(typed: str) -> Tuple[Optional[str], str]:
    """``(subject, failure_reason)`` for a failed login with identifier ``typed``."""
    if not conf.setting("LOOKUP_FAILED_USERS"):
        return None, "unknown_user"
    model = get_user_model()
    try:
        manager: Any = model._default_manager
        user = manager.get_by_natural_key(typed)
    except model.DoesNotExist:
        return None, "unknown_user"
    reason = "bad_password" if getattr(user, "is_active", True) else "disabled"
    return identity.subject(user), reason


def on_user_login_failed(sender: Any, credentials: Mapping[str, Any], request: Any = None,
                         **kwargs: Any) -> None:
    """Publishes ``login.failed`` for a failed ``django.contrib.auth.authenticate``."""
    typed = _typed_identifier(credentials or {})
    if typed is None:
        log.debug("authtrail: failed login without an identifier; nothing published")
        return

    def build() -> events.Event:
        subject, reason = _failed_user(typed)
        return events.login_failed(
            identifier=typed,
            failure_reason=getattr(request, "authtrail_failure_reason", None) or reason,
            subject=subject,
            login_method=identity.login_method(request),
            ip=client_ip(request) if request is not None else None,
            user_agent=user_agent(request) if request is not None else None,
            device_id=identity.device_id(request),
            source=conf.source(),
        )

    conf.emit(build)


def connect() -> None:
    """Connects the receivers (idempotent)."""
    user_logged_in.connect(on_user_logged_in, dispatch_uid="authtrail.django.logged_in")
    user_logged_out.connect(on_user_logged_out, dispatch_uid="authtrail.django.logged_out")
    user_login_failed.connect(on_user_login_failed, dispatch_uid="authtrail.django.login_failed")
