"""A publisher that keeps events in memory: for tests and local development."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Mapping

from ..validation import validate_event


class InMemoryPublisher:
    """Validates events like the real publishers and appends them to :attr:`events`."""

    def __init__(self, *, validate: bool = True) -> None:
        self._validate = validate
        self._lock = threading.Lock()
        self.events: List[Dict[str, Any]] = []

    def publish(self, event: Mapping[str, Any]) -> None:
        """Validates and records one event."""
        self.publish_many([event])

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Validates every event, then records them all."""
        batch = [dict(e) for e in events]
        if self._validate:
            for event in batch:
                validate_event(event)
        with self._lock:
            self.events.extend(batch)

    def flush(self, timeout: float = 10.0) -> None:
        """Nothing to wait for."""

    def close(self) -> None:
        """Nothing to release."""

    def of_type(self, event_type: str) -> List[Dict[str, Any]]:
        """The recorded events of one type, oldest first."""
        with self._lock:
            return [e for e in self.events if e.get("type") == event_type]

    def clear(self) -> None:
        """Forgets every recorded event."""
        with self._lock:
            self.events.clear()
