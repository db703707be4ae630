"""Publishing through authtrail's HTTP intake, ``POST {url}/v1/events``.

The intake validates, enriches (GeoIP, user agent) and appends the events, and answers once
the broker acknowledged all of them; so :meth:`HttpPublisher.publish` returning means the
events are in the log. Nothing is buffered: :meth:`HttpPublisher.flush` has nothing to do.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ..transport import JsonClient, RetryPolicy
from ..validation import validate_event
from .base import CLOUDEVENTS_BATCH, CLOUDEVENTS_JSON, encode_event

#: Path of the intake.
EVENTS_PATH = "/v1/events"


class HttpPublisher:
    """Sends events to ``{url}/v1/events``, authenticated with ``X-API-Key`` (or a service JWT).

    One event goes as ``application/cloudevents+json``, several as one
    ``application/cloudevents-batch+json`` request per ``batch_size`` events. An error status
    raises :class:`~authtrail.errors.ProblemError` with the RFC 9457 problem body (for a
    refused event its ``errors`` name index, field and reason); connection errors, timeouts,
    429 and 5xx are retried with backoff, which is safe because event ids are idempotency keys.
    """

    def __init__(
        self,
        url: str,
        api_key: Optional[str] = None,
        *,
        bearer_token: Optional[str] = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
        batch_size: int = 100,
        validate: bool = True,
        opener: Optional[urllib.request.OpenerDirector] = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._client = JsonClient(
            url, api_key=api_key, bearer_token=bearer_token, timeout=timeout,
            retry=RetryPolicy(max_attempts=max_attempts, backoff=backoff, max_backoff=max_backoff),
            opener=opener,
        )
        self._batch_size = batch_size
        self._validate = validate

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._client.base_url

    def publish(self, event: Mapping[str, Any]) -> None:
        """Sends one event; returns once authtrail appended it."""
        self.send(event)

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Sends events in batches; every event is validated before the first request."""
        self.send_many(events)

    def send(self, event: Mapping[str, Any]) -> Dict[str, Any]:
        """Like :meth:`publish`, returning the intake's answer
        (``{"accepted": 1, "events": [{"id", "partition", "offset"}]}``)."""
        if self._validate:
            validate_event(event)
        answer = self._client.post(EVENTS_PATH, encode_event(event), CLOUDEVENTS_JSON, retry=True)
        return answer if isinstance(answer, dict) else {}

    def send_many(self, events: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """Like :meth:`publish_many`, returning the ``events`` entries of the answers in order."""
        batch = list(events)
        if self._validate:
            for event in batch:
                validate_event(event)
        appended: List[Dict[str, Any]] = []
        for start in range(0, len(batch), self._batch_size):
            chunk = batch[start:start + self._batch_size]
            body = json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            answer = self._client.post(EVENTS_PATH, body, CLOUDEVENTS_BATCH, retry=True)
            if isinstance(answer, dict):
                appended.extend(answer.get("events") or [])
        return appended

    def flush(self, timeout: float = 10.0) -> None:
        """Nothing is buffered: every publish returned after the server acknowledged it."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "HttpPublisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
