"""A small JSON-over-HTTP client on the standard library (``urllib``), shared by
:class:`~authtrail.publishers.http.HttpPublisher` and :class:`~authtrail.introspect.Introspector`.

- Credentials: ``X-API-Key`` or ``Authorization: Bearer`` (a service JWT). They are never
  logged and never sent to another host: redirects are not followed (a 3xx is an error).
- Errors: an error status raises :class:`~authtrail.errors.ProblemError` carrying the RFC 9457
  problem body; a network failure raises :class:`~authtrail.errors.TransportError`.
- Retries (:meth:`JsonClient.post` with ``retry=True``): on connection errors, timeouts, 408,
  429 and 5xx, with exponential backoff (honouring ``Retry-After``). Only for requests that are
  safe to repeat — authtrail's event ids are idempotency keys, so publishing is.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from .errors import ConfigurationError, ProblemError, TransportError
from .version import VERSION

log = logging.getLogger("authtrail")

_MAX_ERROR_BODY = 64 * 1024


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every redirect into an error, so credentials never travel to another URL."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a safe request is sent again."""

    #: Attempts in all (1 = no retry).
    max_attempts: int = 4
    #: First pause, in seconds; doubled each time (with jitter).
    backoff: float = 0.25
    #: Longest pause, in seconds (also caps ``Retry-After``).
    max_backoff: float = 5.0

    def pause(self, attempt: int, retry_after: Optional[float]) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        base = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return base * (0.5 + random.random() / 2)


class JsonClient:
    """POSTs bodies to one authtrail server and decodes JSON answers."""

    def __init__(
        self,
        url: str,
        *,
        api_key: Optional[str] = None,
        bearer_token: Optional[str] = None,
        timeout: float = 10.0,
        retry: Optional[RetryPolicy] = None,
        opener: Optional[urllib.request.OpenerDirector] = None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigurationError("the authtrail URL must start with http:// or https://")
        if (api_key is None) == (bearer_token is None):
            raise ConfigurationError("pass exactly one of api_key and bearer_token")
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._headers = {
            "Accept": "application/json, application/problem+json",
            "User-Agent": f"authtrail-python/{VERSION}",
        }
        if api_key is not None:
            self._headers["X-API-Key"] = api_key
        else:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._opener = opener or urllib.request.build_opener(_RefuseRedirects())

    def post(self, path: str, body: bytes, content_type: str, *, retry: bool = False) -> Any:
        """POSTs ``body`` to ``path`` and returns the decoded JSON answer (``None`` if empty)."""
        attempts = self.retry.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._post_once(path, body, content_type)
            except (ProblemError, TransportError) as error:
                retryable = isinstance(error, TransportError) or error.retryable
                if not retryable or attempt == attempts:
                    raise
                retry_after = error.retry_after if isinstance(error, ProblemError) else None
                pause = self.retry.pause(attempt, retry_after)
                log.warning("authtrail: POST %s failed (%s); attempt %d of %d in %.2f s",
                            path, error, attempt + 1, attempts, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_once(self, path: str, body: bytes, content_type: str) -> Any:
        headers = dict(self._headers, **{"Content-Type": content_type})
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return _decode(response.read())
        except urllib.error.HTTPError as error:
            raise _problem(error) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TransportError(f"POST {self.base_url}{path}: {reason}") from None


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise TransportError(f"authtrail answered with something that is not JSON: {error}") from None


def _problem(error: urllib.error.HTTPError) -> ProblemError:
    raw = b""
    try:
        raw = error.read(_MAX_ERROR_BODY) or b""
    except OSError:
        pass
    problem: Dict[str, Any]
    try:
        decoded = json.loads(raw) if raw.strip() else None
    except ValueError:
        decoded = None
    if isinstance(decoded, Mapping):
        problem = dict(decoded)
    else:
        problem = {"title": error.reason if isinstance(error.reason, str) else "HTTP error",
                   "status": error.code}
        text = raw.decode("utf-8", "replace").strip()
        if text:
            problem["detail"] = text[:500]
    retry_after: Optional[float] = None
    header = error.headers.get("Retry-After") if error.headers else None
    if header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    return ProblemError(error.code, problem, retry_after)
