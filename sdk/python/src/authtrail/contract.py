"""The rules of the event contract that a JSON Schema cannot say.

Mirrors ``events/src/parse.rs`` (the definition): the size limit, the string rules (length,
control and format characters, raw JWTs), member names that look like secrets, the
``subject`` rules and the checks between fields (``expires_at`` after ``time``, a refresh
rotates the token, ...). :func:`check_contract` raises the first fault as
:class:`~authtrail.errors.EventValidationError` naming the field the way authtrail does.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from datetime import datetime
from typing import Any, Iterator, Mapping, Optional, Tuple

from .errors import EventValidationError
from .timefmt import MAX_YEAR, MIN_YEAR, parse_time

#: Largest event, in bytes of its JSON encoding.
MAX_EVENT_BYTES = 64 * 1024
#: Longest string value or member name, in characters.
MAX_STRING_CHARS = 2048
#: Longest ``subject`` and ``identifier``, in characters (they are index keys).
MAX_KEY_CHARS = 320

#: Member names refused anywhere in an event (compared lower-cased).
SECRET_NAMES = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "otp",
        "otp_code",
        "code",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "jwt",
        "api_key",
        "authorization",
        "cookie",
    }
)

#: The attributes of the envelope; ``publisher`` is stamped by authtrail and never sent.
ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "schemaversion",
    "data",
    "publisher",
)

_ATTRIBUTE_CHARS = frozenset(string.ascii_lowercase + string.digits)
_JWT_WORD = re.compile(r"[A-Za-z0-9_.-]+")

# Characters Python's unicodedata (which may lag behind) does not yet class as Cf but the
# contract refuses; kept in step with FORMAT_CHARS in events/src/parse.rs.
_EXTRA_FORMAT_RANGES = ((0x0890, 0x0891), (0x13430, 0x1343F))


def looks_like_jwt(text: str) -> bool:
    """Whether ``text`` contains something shaped like a compact JWS/JWE (``eyJ…`` with two or
    four dots), as ``looks_like_jwt`` in the contract."""
    for word in _JWT_WORD.findall(text):
        parts = word.split(".")
        if len(parts) in (3, 5) and parts[0].startswith("eyJ") and len(parts[0]) >= 10 and parts[1]:
            return True
    return False


def _is_refused_char(ch: str) -> Optional[str]:
    """``"control"`` or ``"format"`` when the contract refuses ``ch``, else ``None``."""
    cat = unicodedata.category(ch)
    if cat == "Cc":
        return "control"
    if cat == "Cf":
        return "format"
    cp = ord(ch)
    if any(lo <= cp <= hi for lo, hi in _EXTRA_FORMAT_RANGES):
        return "format"
    return None


def string_fault(text: str) -> Optional[str]:
    """Why the contract refuses ``text`` as a string value or member name, or ``None``."""
    if len(text) > MAX_STRING_CHARS:
        return f"is {len(text)} characters; the limit is {MAX_STRING_CHARS}"
    for ch in text:
        kind = _is_refused_char(ch)
        if kind is not None:
            return f"contains the {kind} character U+{ord(ch):04X}"
    if looks_like_jwt(text):
        return (
            "looks like a raw JWT; publish the token's id (jti) or a hash of it, never the token"
        )
    return None


def _printable_name(name: str, limit: int = 64) -> str:
    out = []
    for i, ch in enumerate(name):
        if i == limit:
            out.append("…")
            break
        out.append(f"\\u{{{ord(ch):x}}}" if _is_refused_char(ch) else ch)
    return "".join(out)


def _walk(value: Any, path: str) -> Iterator[Tuple[str, str]]:
    """Yields ``(field, reason)`` for every string or member name under ``value`` the
    contract refuses."""
    if isinstance(value, str):
        fault = string_fault(value)
        if fault:
            yield path, fault
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            fault = string_fault(key)
            if fault:
                yield f"{path}.{_printable_name(key)}", fault
                continue
            child = f"{path}.{key}"
            if key.lower() in SECRET_NAMES:
                yield child, (
                    "is named like a secret; authtrail stores no password, token or one-time "
                    "code: publish an id or a hash instead"
                )
                continue
            yield from _walk(item, child)


def _plausible_attribute(name: str) -> bool:
    return 1 <= len(name) <= 20 and all(c in _ATTRIBUTE_CHARS for c in name)


def encoded_size(event: Mapping[str, Any]) -> int:
    """Bytes of the event's compact UTF-8 JSON encoding (what the publishers send)."""
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def check_contract(event: Mapping[str, Any]) -> None:
    """Raises :class:`EventValidationError` for the first rule of the contract ``event``
    breaks beyond its JSON Schema (which :mod:`authtrail.validation` checks in between)."""
    check_strings(event)
    check_rules(event)


def check_strings(event: Mapping[str, Any]) -> None:
    """The checks authtrail makes before looking at any field: size, attribute names, every
    string and member name (length, control and format characters, raw JWTs, names like
    secrets), and no ``publisher``."""
    size = encoded_size(event)
    if size > MAX_EVENT_BYTES:
        raise EventValidationError("(event)", f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    for key, value in event.items():
        if key not in ATTRIBUTES:
            if _plausible_attribute(key):
                raise EventValidationError(key, "unknown attribute")
            raise EventValidationError("(attribute)", "a member name is not a valid attribute name")
        for field, reason in _walk(value, key):
            raise EventValidationError(field, reason)
    if "publisher" in event:
        raise EventValidationError(
            "publisher", "is stamped by authtrail from the credential; publishers never send it"
        )


def _time_of(field: str, value: Any) -> datetime:
    try:
        t = parse_time(value)
    except (TypeError, ValueError):
        raise EventValidationError(field, "not an RFC 3339 time with offset") from None
    if not MIN_YEAR <= t.year <= MAX_YEAR:
        raise EventValidationError(field, f"year {t.year} is outside {MIN_YEAR} to {MAX_YEAR}")
    return t


def check_rules(event: Mapping[str, Any]) -> None:
    """The rules between fields (times after ``time``, ``subject`` presence, rotation, scope,
    geo ranges), for an event that satisfies its schema."""
    event_type = event.get("type")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(event.get("time"), str):
        return  # the schema reports these
    time = _time_of("time", event["time"])
    subject = event.get("subject")
    if isinstance(subject, str):
        if not subject.strip():
            raise EventValidationError("subject", "must not be empty")
        if len(subject) > MAX_KEY_CHARS:
            raise EventValidationError("subject", f"is longer than {MAX_KEY_CHARS} characters")
    identifier = data.get("identifier")
    if isinstance(identifier, str) and len(identifier) > MAX_KEY_CHARS:
        raise EventValidationError("data.identifier", f"is longer than {MAX_KEY_CHARS} characters")

    def after_time(field: str) -> None:
        value = data.get(field)
        if isinstance(value, str):
            t = _time_of(f"data.{field}", value)
            if not t > time:
                raise EventValidationError(f"data.{field}", "must be after the event's time")

    if event_type in ("login.succeeded", "token.refreshed"):
        after_time("expires_at")
    if event_type == "account.locked":
        after_time("until")
    if event_type == "login.failed" and subject is None and data.get("failure_reason") != "unknown_user":
        raise EventValidationError("subject", "may be absent only when failure_reason is unknown_user")
    if event_type == "token.refreshed" and data.get("refresh_token_id") == data.get(
        "previous_refresh_token_id"
    ):
        raise EventValidationError(
            "data.refresh_token_id",
            "must differ from previous_refresh_token_id (a refresh rotates the token)",
        )
    if event_type == "session.revoked" and data.get("scope") != "all" and data.get("session_id") is None:
        raise EventValidationError("data.session_id", f"is required for scope {data.get('scope')}")
    geo = data.get("geo")
    if isinstance(geo, dict):
        _check_geo(geo)


def _check_geo(geo: Mapping[str, Any]) -> None:
    cc = geo.get("country_code")
    if isinstance(cc, str) and not (len(cc) == 2 and cc.isascii() and cc.isupper() and cc.isalpha()):
        raise EventValidationError(
            "data.geo.country_code", "must be two upper-case letters (ISO 3166-1 alpha-2)"
        )
    for field, bound in (("latitude", 90), ("longitude", 180)):
        v = geo.get(field)
        if isinstance(v, (int, float)) and not -bound <= v <= bound:
            raise EventValidationError(f"data.geo.{field}", f"must be within -{bound} and {bound}")
