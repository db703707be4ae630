"""Derived ids: session ids that are safe to publish, and the Kafka key of an event.

A session id in authtrail is visible to the user, to admins and in the log forever, so it must
never be a bearer credential. A Django session key *is* one (whoever holds it is logged in),
and so is a refresh token; their ids are derived with SHA-256 instead:

- :func:`django_session_id`: ``"dj_"`` + the first 32 hex digits of SHA-256(session key);
- :func:`jwt_session_id`: ``"jwt_"`` + the first 32 hex digits of SHA-256(jti of the first
  refresh token of the session).

128 bits of a cryptographic hash: stable, collision-free in practice, and the key cannot be
recovered from it. Call the same function to compute the id for introspection.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Optional

#: Hex digits of SHA-256 kept in a derived id (128 bits).
DERIVED_HEX_DIGITS = 32


def derived_id(prefix: str, secret: str) -> str:
    """``prefix`` + the first 32 hex digits of SHA-256(``secret`` as UTF-8)."""
    if not secret:
        raise ValueError("cannot derive an id from an empty value")
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
    return prefix + digest[:DERIVED_HEX_DIGITS]


def django_session_id(session_key: str) -> str:
    """The authtrail session id of a Django session: ``"dj_" + sha256(session_key)[:32]``.

    Never publish the session key itself: it is a bearer credential.
    """
    return derived_id("dj_", session_key)


def jwt_session_id(jti: str) -> str:
    """The authtrail session id of a token session, from the ``jti`` of the refresh token
    issued at login: ``"jwt_" + sha256(jti)[:32]``. It stays the session's id across
    refreshes (carry it in the tokens, e.g. as the ``sid`` claim)."""
    return derived_id("jwt_", jti)


def partition_key(event: Mapping[str, Any]) -> Optional[str]:
    """The Kafka key of ``event``: its ``subject``; for a ``login.failed`` without subject the
    lower-cased ``identifier`` (see events/README.md, "Kafka")."""
    subject = event.get("subject")
    if isinstance(subject, str) and subject:
        return subject
    data = event.get("data")
    if event.get("type") == "login.failed" and isinstance(data, Mapping):
        identifier = data.get("identifier")
        if isinstance(identifier, str) and identifier:
            return identifier.lower()
    return None
