"""Times as the contract writes them: RFC 3339, UTC, ``Z``."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Union

#: A time argument: an aware :class:`~datetime.datetime`, or an RFC 3339 string used as given.
TimeLike = Union[datetime, str]

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<clock>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})$"
)

#: The years the contract accepts (``YEARS`` in events/src/parse.rs).
MIN_YEAR = 1970
MAX_YEAR = 9000


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def format_time(value: TimeLike) -> str:
    """Formats an aware datetime as RFC 3339 in UTC with ``Z``.

    Whole seconds are written without a fraction, whole milliseconds with three digits and
    anything finer with six (authtrail keeps microseconds). A string is returned unchanged
    (validation checks it). A naive datetime is refused: its zone would be a guess.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or an RFC 3339 string, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime (e.g. with tzinfo=timezone.utc)")
    value = value.astimezone(timezone.utc)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def parse_time(text: str) -> datetime:
    """Parses an RFC 3339 time (with offset) into an aware UTC datetime.

    Fractions beyond microseconds are truncated, as authtrail does. Raises :class:`ValueError`
    for anything that is not RFC 3339 with an offset.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time with offset: {text!r}")
    frac = (m.group("frac") or "")[1:]
    frac = (frac + "000000")[:6] if frac else "000000"
    offset = m.group("offset")
    offset = "+00:00" if offset in ("Z", "z") else offset
    parsed = datetime.fromisoformat(f"{m.group('date')}T{m.group('clock')}.{frac}{offset}")
    return parsed.astimezone(timezone.utc)


def is_rfc3339(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 date-time with offset, within the contract's years."""
    try:
        t = parse_time(text)
    except (ValueError, OverflowError):
        return False
    return MIN_YEAR <= t.year <= MAX_YEAR
