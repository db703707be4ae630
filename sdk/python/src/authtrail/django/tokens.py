"""Hooks for token stacks that never call ``django.contrib.auth.login`` (simplejwt,
graphql-jwt, your own): call them where tokens are issued, refreshed and revoked.

A token session's authtrail id comes from the refresh token issued at login:
:func:`~authtrail.ids.jwt_session_id` of its ``jti``. Carry it in the tokens (e.g. a ``sid``
claim, which authtrail's API also reads) so that refreshes and logouts can name it. Only token
*ids* (``jti``) are published, never tokens.

Each hook returns the published event, or ``None`` when publishing failed and
``AUTHTRAIL["RAISE_ERRORS"]`` is false.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from .. import events
from ..ids import jwt_session_id
from ..timefmt import TimeLike
from . import conf, identity
from .request import client_ip, user_agent


def _ip(request: Any) -> Optional[str]:
    return client_ip(request) if request is not None else None


def _ua(request: Any) -> Optional[str]:
    return user_agent(request) if request is not None else None


def token_issued(
    request: Any,
    user: Any,
    jti: str,
    expires_at: TimeLike,
    *,
    session_id: Optional[str] = None,
    login_method: Optional[str] = None,
    identifier: Optional[str] = None,
    device_id: Optional[str] = None,
    roles: Optional[Iterable[str]] = None,
) -> Optional[events.Event]:
    """A login that issued tokens: ``login.succeeded`` with ``refresh_token_id = jti`` and
    ``session_id = jwt_session_id(jti)`` unless given. ``expires_at``: the refresh token's
    expiry. ``user``: a user object or the user id."""
    sid = session_id or jwt_session_id(jti)
    return conf.emit(lambda: events.login_succeeded(
        subject=identity.subject(user),
        session_id=sid,
        login_method=identity.login_method(request, login_method),
        expires_at=expires_at,
        identifier=identifier if identifier is not None else identity.identifier(user),
        refresh_token_id=jti,
        ip=_ip(request),
        user_agent=_ua(request),
        device_id=device_id if device_id is not None else identity.device_id(request),
        roles=roles if roles is not None else identity.roles(user),
        source=conf.source(),
    ))


def token_refreshed(
    request: Any,
    user: Any,
    session_id: str,
    old_jti: str,
    new_jti: str,
    expires_at: TimeLike,
) -> Optional[events.Event]:
    """A refresh that rotated the refresh token: ``token.refreshed`` with
    ``previous_refresh_token_id = old_jti``, ``refresh_token_id = new_jti`` and the new
    token's ``expires_at``."""
    return conf.emit(lambda: events.token_refreshed(
        subject=identity.subject(user),
        session_id=session_id,
        refresh_token_id=new_jti,
        previous_refresh_token_id=old_jti,
        expires_at=expires_at,
        ip=_ip(request),
        user_agent=_ua(request),
        source=conf.source(),
    ))


def token_used(request: Any, user: Any, session_id: str) -> Optional[events.Event]:
    """The session was used without rotating anything (e.g. a refresh without rotation):
    ``session.activity``."""
    return conf.emit(lambda: events.session_activity(
        subject=identity.subject(user), session_id=session_id, ip=_ip(request),
        user_agent=_ua(request), source=conf.source()))


def token_logged_out(request: Any, user: Any, session_id: str) -> Optional[events.Event]:
    """The user signed out (e.g. the refresh token was blacklisted): ``session.logged_out``."""
    return conf.emit(lambda: events.session_logged_out(
        subject=identity.subject(user), session_id=session_id, source=conf.source()))
