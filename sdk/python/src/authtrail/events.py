"""Event builders: one function per event type a service publishes.

Each builder takes plain keyword arguments and returns the event as a JSON-ready ``dict``
(CloudEvents 1.0, structured mode), validated against the bundled schema and the contract
(:func:`authtrail.validation.validate_event`) unless ``validate=False``:

- ``id``: ``event_id`` or a fresh UUID (the idempotency key: keep it when you retry);
- ``time``: ``time`` or now, RFC 3339 in UTC with ``Z`` (see :func:`authtrail.timefmt.format_time`);
- ``specversion`` ``"1.0"``, ``schemaversion`` ``1``, ``datacontenttype`` ``"application/json"``;
- ``source``: the ``source`` argument, else the default set with :func:`set_default_source`,
  else the ``AUTHTRAIL_SOURCE`` environment variable (:class:`ConfigurationError` if none);
- ``publisher`` is never set: authtrail stamps it from the credential.

Optional arguments left at ``None`` are left out of ``data``. ``admin.action`` and
``security_event.reviewed`` have no builder: only authtrail itself appends them.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from typing import Any, Dict, Iterable, Mapping, Optional, Union

from .errors import ConfigurationError
from .timefmt import TimeLike, format_time, utc_now
from .validation import validate_event

#: An event: the JSON object, as Python values.
Event = Dict[str, Any]
#: An IP address argument.
IpLike = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]

SPEC_VERSION = "1.0"
SCHEMA_VERSION = 1
DATA_CONTENT_TYPE = "application/json"

LOGIN_METHODS = ("password", "microsoft", "sso", "api_key", "test_login")
FAILURE_REASONS = ("bad_password", "unknown_user", "account_locked", "otp_failed", "disabled", "other")
OTP_CHANNELS = ("email", "sms", "totp", "push")
REVOKE_SCOPES = ("one", "all", "all_except")

_default_source: Optional[str] = None


def set_default_source(source: Optional[str]) -> None:
    """Sets the ``source`` used by builders called without one (``None`` clears it)."""
    global _default_source
    _default_source = source


def default_source() -> Optional[str]:
    """The ``source`` builders use when given none (see the module documentation)."""
    return _default_source or os.environ.get("AUTHTRAIL_SOURCE") or None


def _ip(value: Optional[IpLike]) -> Optional[str]:
    return None if value is None else str(value)


def _time(value: Optional[TimeLike]) -> Optional[str]:
    return None if value is None else format_time(value)


def build_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    subject: Optional[str],
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """Builds an event of any type from its ``data`` (``None`` members are dropped).

    The typed builders below call this; use it directly only for a type they do not cover.
    """
    resolved_source = source or default_source()
    if not resolved_source:
        raise ConfigurationError(
            "no event source: pass source=..., call authtrail.set_default_source(...) "
            "or set AUTHTRAIL_SOURCE (e.g. '/services/auth-api')"
        )
    event: Event = {
        "specversion": SPEC_VERSION,
        "id": str(event_id) if event_id is not None else str(uuid.uuid4()),
        "source": resolved_source,
        "type": event_type,
        "time": format_time(time if time is not None else utc_now()),
    }
    if subject is not None:
        event["subject"] = str(subject)
    event["datacontenttype"] = DATA_CONTENT_TYPE
    event["schemaversion"] = SCHEMA_VERSION
    event["data"] = {k: v for k, v in data.items() if v is not None}
    if validate:
        validate_event(event)
    return event


def login_succeeded(
    *,
    subject: str,
    session_id: str,
    login_method: str,
    expires_at: TimeLike,
    identifier: Optional[str] = None,
    refresh_token_id: Optional[str] = None,
    ip: Optional[IpLike] = None,
    user_agent: Optional[str] = None,
    device_id: Optional[str] = None,
    device_name: Optional[str] = None,
    otp_required: Optional[bool] = None,
    otp_verified: Optional[bool] = None,
    roles: Optional[Iterable[str]] = None,
    geo: Optional[Mapping[str, Any]] = None,
    device: Optional[Mapping[str, Any]] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``login.succeeded``: a session began. ``expires_at`` must be after ``time``;
    ``refresh_token_id`` is the refresh token's id (``jti``) or a hash of it, never the token."""
    data = {
        "session_id": session_id,
        "login_method": login_method,
        "expires_at": _time(expires_at),
        "identifier": identifier,
        "refresh_token_id": refresh_token_id,
        "ip": _ip(ip),
        "user_agent": user_agent,
        "device_id": device_id,
        "device_name": device_name,
        "otp_required": otp_required,
        "otp_verified": otp_verified,
        "roles": list(roles) if roles is not None else None,
        "geo": dict(geo) if geo is not None else None,
        "device": dict(device) if device is not None else None,
    }
    return build_event("login.succeeded", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def login_failed(
    *,
    identifier: str,
    failure_reason: str,
    subject: Optional[str] = None,
    login_method: Optional[str] = None,
    ip: Optional[IpLike] = None,
    user_agent: Optional[str] = None,
    device_id: Optional[str] = None,
    geo: Optional[Mapping[str, Any]] = None,
    device: Optional[Mapping[str, Any]] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``login.failed``. ``identifier`` is what the user typed (email or username), never the
    password. ``subject`` may be left out only with ``failure_reason="unknown_user"``."""
    data = {
        "identifier": identifier,
        "failure_reason": failure_reason,
        "login_method": login_method,
        "ip": _ip(ip),
        "user_agent": user_agent,
        "device_id": device_id,
        "geo": dict(geo) if geo is not None else None,
        "device": dict(device) if device is not None else None,
    }
    return build_event("login.failed", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def token_refreshed(
    *,
    subject: str,
    session_id: str,
    refresh_token_id: str,
    previous_refresh_token_id: str,
    expires_at: TimeLike,
    ip: Optional[IpLike] = None,
    user_agent: Optional[str] = None,
    geo: Optional[Mapping[str, Any]] = None,
    device: Optional[Mapping[str, Any]] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``token.refreshed``: the refresh token presented (``previous_refresh_token_id``) was
    exchanged for a new one (``refresh_token_id``, must differ); ids, never tokens."""
    data = {
        "session_id": session_id,
        "refresh_token_id": refresh_token_id,
        "previous_refresh_token_id": previous_refresh_token_id,
        "expires_at": _time(expires_at),
        "ip": _ip(ip),
        "user_agent": user_agent,
        "geo": dict(geo) if geo is not None else None,
        "device": dict(device) if device is not None else None,
    }
    return build_event("token.refreshed", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def session_activity(
    *,
    subject: str,
    session_id: str,
    ip: Optional[IpLike] = None,
    user_agent: Optional[str] = None,
    geo: Optional[Mapping[str, Any]] = None,
    device: Optional[Mapping[str, Any]] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``session.activity``: the session was used (keeps it from idling out)."""
    data = {
        "session_id": session_id,
        "ip": _ip(ip),
        "user_agent": user_agent,
        "geo": dict(geo) if geo is not None else None,
        "device": dict(device) if device is not None else None,
    }
    return build_event("session.activity", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def session_logged_out(
    *,
    subject: str,
    session_id: str,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``session.logged_out``: the user ended the session."""
    return build_event("session.logged_out", {"session_id": session_id}, subject=subject,
                       source=source, event_id=event_id, time=time, validate=validate)


def session_revoked(
    *,
    subject: str,
    scope: str,
    reason: str,
    revoked_by: str,
    session_id: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``session.revoked``: ``scope`` ``one`` (``session_id`` revoked), ``all``, or
    ``all_except`` (``session_id`` kept); ``revoked_by`` is an actor id or ``"system"``."""
    data = {"scope": scope, "session_id": session_id, "reason": reason, "revoked_by": revoked_by}
    return build_event("session.revoked", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def _otp(event_type: str, subject: str, data: Mapping[str, Any], source: Optional[str],
         event_id: Optional[Union[str, uuid.UUID]], time: Optional[TimeLike], validate: bool) -> Event:
    return build_event(event_type, data, subject=subject, source=source, event_id=event_id,
                       time=time, validate=validate)


def otp_sent(
    *,
    subject: str,
    channel: str,
    session_id: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``otp.sent``: a one-time code went out over ``channel`` (the code itself never does)."""
    return _otp("otp.sent", subject, {"channel": channel, "session_id": session_id},
                source, event_id, time, validate)


def otp_verified(
    *,
    subject: str,
    channel: str,
    session_id: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``otp.verified``: the user entered the right code."""
    return _otp("otp.verified", subject, {"channel": channel, "session_id": session_id},
                source, event_id, time, validate)


def otp_failed(
    *,
    subject: str,
    channel: str,
    reason: Optional[str] = None,
    session_id: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``otp.failed``: a wrong or expired code (``reason`` e.g. ``"code_mismatch"``)."""
    return _otp("otp.failed", subject,
                {"channel": channel, "reason": reason, "session_id": session_id},
                source, event_id, time, validate)


def password_changed(
    *,
    subject: str,
    changed_by: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``password.changed``: ``changed_by`` is the user, an admin, or ``"system"``."""
    return build_event("password.changed", {"changed_by": changed_by}, subject=subject,
                       source=source, event_id=event_id, time=time, validate=validate)


def account_locked(
    *,
    subject: str,
    reason: str,
    until: Optional[TimeLike] = None,
    actor: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``account.locked``; ``until`` (after ``time``) for a temporary lock."""
    data = {"reason": reason, "until": _time(until), "actor": actor}
    return build_event("account.locked", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def account_unlocked(
    *,
    subject: str,
    reason: str,
    actor: Optional[str] = None,
    until: Optional[TimeLike] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``account.unlocked``."""
    data = {"reason": reason, "until": _time(until), "actor": actor}
    return build_event("account.unlocked", data, subject=subject, source=source,
                       event_id=event_id, time=time, validate=validate)


def _device(event_type: str, subject: str, device_id: str, device_name: Optional[str],
            source: Optional[str], event_id: Optional[Union[str, uuid.UUID]],
            time: Optional[TimeLike], validate: bool) -> Event:
    return build_event(event_type, {"device_id": device_id, "device_name": device_name},
                       subject=subject, source=source, event_id=event_id, time=time,
                       validate=validate)


def device_trusted(
    *,
    subject: str,
    device_id: str,
    device_name: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``device.trusted``: the user marked ``device_id`` as trusted."""
    return _device("device.trusted", subject, device_id, device_name, source, event_id, time,
                   validate)


def device_untrusted(
    *,
    subject: str,
    device_id: str,
    device_name: Optional[str] = None,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``device.untrusted``: trust in ``device_id`` was withdrawn."""
    return _device("device.untrusted", subject, device_id, device_name, source, event_id, time,
                   validate)


def device_renamed(
    *,
    subject: str,
    device_id: str,
    device_name: str,
    source: Optional[str] = None,
    event_id: Optional[Union[str, uuid.UUID]] = None,
    time: Optional[TimeLike] = None,
    validate: bool = True,
) -> Event:
    """``device.renamed``: the user's own name for the device (shown instead of the parsed one)."""
    return _device("device.renamed", subject, device_id, device_name, source, event_id, time,
                   validate)


#: Builder per event type (the types a service publishes).
BUILDERS = {
    "login.succeeded": login_succeeded,
    "login.failed": login_failed,
    "token.refreshed": token_refreshed,
    "session.activity": session_activity,
    "session.logged_out": session_logged_out,
    "session.revoked": session_revoked,
    "otp.sent": otp_sent,
    "otp.verified": otp_verified,
    "otp.failed": otp_failed,
    "password.changed": password_changed,
    "account.locked": account_locked,
    "account.unlocked": account_unlocked,
    "device.trusted": device_trusted,
    "device.untrusted": device_untrusted,
    "device.renamed": device_renamed,
}

__all__ = [
    "BUILDERS", "DATA_CONTENT_TYPE", "Event", "FAILURE_REASONS", "IpLike", "LOGIN_METHODS",
    "OTP_CHANNELS", "REVOKE_SCOPES", "SCHEMA_VERSION", "SPEC_VERSION", "account_locked",
    "account_unlocked", "build_event", "default_source", "device_renamed", "device_trusted",
    "device_untrusted", "login_failed", "login_succeeded", "otp_failed", "otp_sent",
    "otp_verified", "password_changed", "session_activity", "session_logged_out",
    "session_revoked", "set_default_source", "token_refreshed",
]
