"""What a request tells about the client: IP address and user agent, made safe to publish."""

from __future__ import annotations

import ipaddress
import unicodedata
from typing import Any, List, Optional, Sequence, Union

from ..contract import MAX_KEY_CHARS, MAX_STRING_CHARS, looks_like_jwt
from . import conf

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def _address(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _networks(entries: Sequence[str]) -> List[Network]:
    return [ipaddress.ip_network(e, strict=False) for e in entries]


def client_ip(request: Any) -> Optional[str]:
    """The client's IP address: ``REMOTE_ADDR``, or — only when ``AUTHTRAIL["TRUSTED_PROXIES"]``
    says the request came through trusted proxies — taken from ``X-Forwarded-For``.

    ``TRUSTED_PROXIES`` is either a list of proxy addresses or networks (``"10.0.0.0/8"``): the
    client is the right-most ``X-Forwarded-For`` entry that is not a trusted proxy, provided
    ``REMOTE_ADDR`` is one; or an integer N: N proxies are in front, so the client is the N-th
    entry from the right of ``X-Forwarded-For`` + ``REMOTE_ADDR``. Unparseable values give
    ``None`` rather than a spoofable string.
    """
    meta = getattr(request, "META", {}) or {}
    remote = _address(str(meta.get("REMOTE_ADDR") or ""))
    trusted: Any = conf.setting("TRUSTED_PROXIES") or []
    forwarded = [p for p in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if p.strip()]
    if isinstance(trusted, int) and not isinstance(trusted, bool):
        hops = forwarded + ([str(remote)] if remote else [])
        if trusted <= 0 or not hops:
            return str(remote) if remote else None
        chosen = _address(hops[max(len(hops) - 1 - trusted, 0)])
        return str(chosen) if chosen else None
    if remote is None:
        return None
    networks = _networks([str(t) for t in trusted])
    if not networks or not any(remote in n for n in networks):
        return str(remote)
    for entry in reversed(forwarded):
        addr = _address(entry)
        if addr is None:
            return None
        if not any(addr in n for n in networks):
            return str(addr)
    return str(remote)


def safe_text(value: Optional[str], limit: int = MAX_STRING_CHARS) -> Optional[str]:
    """``value`` without control or format characters and at most ``limit`` characters, or
    ``None`` when nothing is left or it carries a token (a value the contract would refuse must
    not cost the whole event)."""
    if value is None:
        return None
    cleaned = "".join(ch for ch in str(value) if unicodedata.category(ch) not in ("Cc", "Cf"))
    cleaned = cleaned.strip()[:limit]
    if not cleaned or looks_like_jwt(cleaned):
        return None
    return cleaned


def user_agent(request: Any) -> Optional[str]:
    """``HTTP_USER_AGENT``, made safe to publish (see :func:`safe_text`)."""
    meta = getattr(request, "META", {}) or {}
    return safe_text(meta.get("HTTP_USER_AGENT"))


def identifier(value: Optional[str]) -> Optional[str]:
    """A typed identifier (username, email), made safe to publish (at most 320 characters)."""
    return safe_text(value, MAX_KEY_CHARS)
