"""Publishing straight to Kafka, to authtrail's raw topic (``authtrail.raw`` by default).

authtrail's enrichment stage consumes the raw topic, validates and enriches each event exactly
as the HTTP intake does, and appends it to the events topic; a refused one goes to the rejected
topic with the field and reason. Needs ``confluent-kafka`` (``pip install authtrail[kafka]``).

Producer settings (events/README.md, "Kafka"): ``enable.idempotence=true``, ``acks=all`` (both
enforced), and ``partitioner=murmur2_random`` (Kafka's Java partitioner, so one user's events
stay in one partition, in order; librdkafka's default would scatter them).
Each message: key = the event's ``subject`` (for a ``login.failed`` without one, the lower-cased
``identifier``), value = the event as JSON (structured-mode CloudEvent), header
``content-type: application/cloudevents+json; charset=UTF-8``.

Delivery is asynchronous: :meth:`KafkaPublisher.publish` queues the message and
:meth:`KafkaPublisher.flush` waits for the broker's acknowledgements and raises
:class:`~authtrail.errors.DeliveryError` naming each event that was not delivered. With
``sync=True`` every publish call flushes before returning (and raises on failure).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ..errors import ConfigurationError, DeliveryError
from ..ids import partition_key
from ..validation import validate_event
from .base import CLOUDEVENTS_JSON, encode_event

log = logging.getLogger("authtrail")

#: The raw topic authtrail's enrichment stage reads by default.
DEFAULT_TOPIC = "authtrail.raw"
#: The ``content-type`` header of every message (CloudEvents Kafka binding, structured mode).
CONTENT_TYPE_HEADER = f"{CLOUDEVENTS_JSON}; charset=UTF-8"

_REQUIRED = {"enable.idempotence": True, "acks": "all"}
_DEFAULTS: Dict[str, Any] = {
    "partitioner": "murmur2_random",
    "client.id": "authtrail-python",
    "linger.ms": 5,
}

#: Called with ``(event id, error text)`` for each event the broker did not take.
DeliveryErrorHandler = Callable[[str, str], None]


def _same(a: Any, b: Any) -> bool:
    return str(a).lower() == str(b).lower()


class KafkaPublisher:
    """Produces events to the raw topic with an idempotent ``confluent_kafka.Producer``.

    ``brokers`` is ``bootstrap.servers``; ``config`` adds or overrides librdkafka settings
    (security, timeouts, ...), except that idempotence and ``acks=all`` cannot be turned off.
    ``producer`` injects a ready-made producer (anything with ``produce``, ``poll`` and
    ``flush``), e.g. for tests.
    """

    def __init__(
        self,
        brokers: Optional[str] = None,
        *,
        topic: str = DEFAULT_TOPIC,
        config: Optional[Mapping[str, Any]] = None,
        producer: Any = None,
        sync: bool = False,
        sync_timeout: float = 10.0,
        validate: bool = True,
        on_delivery_error: Optional[DeliveryErrorHandler] = None,
    ) -> None:
        if not topic:
            raise ConfigurationError("topic must not be empty")
        self.topic = topic
        self._sync = sync
        self._sync_timeout = sync_timeout
        self._validate = validate
        self._on_delivery_error = on_delivery_error
        self._lock = threading.Lock()
        self._failures: List[Tuple[str, str]] = []
        self._producer = producer if producer is not None else self._make_producer(brokers, config)

    @staticmethod
    def producer_config(brokers: Optional[str], config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The librdkafka configuration the publisher uses (see the module documentation)."""
        merged: Dict[str, Any] = dict(_DEFAULTS)
        merged.update(config or {})
        for key, value in _REQUIRED.items():
            if key in merged and not _same(merged[key], value):
                raise ConfigurationError(f"{key}={merged[key]!r} is not allowed: authtrail needs {key}={value}")
            merged[key] = value
        if brokers:
            merged["bootstrap.servers"] = brokers
        if not merged.get("bootstrap.servers"):
            raise ConfigurationError("no brokers: pass brokers= or bootstrap.servers in config")
        return merged

    @classmethod
    def _make_producer(cls, brokers: Optional[str], config: Optional[Mapping[str, Any]]) -> Any:
        try:
            from confluent_kafka import Producer
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "KafkaPublisher needs confluent-kafka: pip install 'authtrail[kafka]'"
            ) from error
        return Producer(cls.producer_config(brokers, config))

    def publish(self, event: Mapping[str, Any]) -> None:
        """Validates and queues one event (``sync=True``: and waits for its acknowledgement)."""
        self.publish_many([event])

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Validates every event, then queues them all (``sync=True``: and waits)."""
        batch = list(events)
        if self._validate:
            for event in batch:
                validate_event(event)
        for event in batch:
            self._produce(event)
        if self._sync:
            self.flush(self._sync_timeout)

    def _produce(self, event: Mapping[str, Any]) -> None:
        event_id = str(event.get("id", "?"))
        key = partition_key(event)
        kwargs = dict(
            value=encode_event(event),
            key=key.encode("utf-8") if key is not None else None,
            headers=[("content-type", CONTENT_TYPE_HEADER.encode("ascii"))],
            on_delivery=self._delivery_callback(event_id, str(event.get("type", "?"))),
        )
        deadline = time.monotonic() + self._sync_timeout
        while True:
            try:
                self._producer.produce(self.topic, **kwargs)
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then retry.
                if time.monotonic() >= deadline:
                    raise DeliveryError([(event_id, "local producer queue full")]) from None
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivery_callback(self, event_id: str, event_type: str) -> Callable[[Any, Any], None]:
        def report(error: Any, _message: Any) -> None:
            if error is None:
                return
            text = str(error)
            log.error("authtrail: event %s (%s) not delivered: %s", event_id, event_type, text)
            with self._lock:
                self._failures.append((event_id, text))
            if self._on_delivery_error is not None:
                self._on_delivery_error(event_id, text)

        return report

    def poll(self, timeout: float = 0.0) -> None:
        """Serves delivery reports (call now and then when publishing without flushing)."""
        self._producer.poll(timeout)

    def flush(self, timeout: float = 10.0) -> None:
        """Waits up to ``timeout`` seconds for every queued event to be acknowledged; raises
        :class:`DeliveryError` for the events that failed since the last flush, or when some
        are still queued at the deadline."""
        remaining = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            failures.append(("(queued)", f"{remaining} event(s) still unacknowledged after {timeout} s"))
        if failures:
            raise DeliveryError(failures)

    def close(self, timeout: float = 10.0) -> None:
        """Flushes (raising for undelivered events)."""
        self.flush(timeout)

    def __enter__(self) -> "KafkaPublisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
