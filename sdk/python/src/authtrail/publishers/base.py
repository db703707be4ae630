"""What every publisher offers, and the wire encoding they share."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

#: Content type of one event in structured mode (CloudEvents JSON format).
CLOUDEVENTS_JSON = "application/cloudevents+json"
#: Content type of a JSON array of events (CloudEvents batch format).
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


@runtime_checkable
class Publisher(Protocol):
    """Sends events to authtrail.

    Implementations validate each event (:func:`authtrail.validation.validate_event`) before it
    leaves the process and raise :class:`~authtrail.errors.EventValidationError` for one that
    breaks the contract, without sending any of a ``publish_many`` batch.
    """

    def publish(self, event: Mapping[str, Any]) -> None:
        """Sends one event."""

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Sends several events (all are validated before any is sent)."""

    def flush(self, timeout: float = 10.0) -> None:
        """Waits until everything sent so far is acknowledged, or raises
        :class:`~authtrail.errors.PublishError` for what was not."""

    def close(self) -> None:
        """Flushes and releases resources."""


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The event as compact UTF-8 JSON (structured-mode CloudEvent)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
