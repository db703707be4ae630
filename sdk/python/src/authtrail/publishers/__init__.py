"""Publishers: how events get to authtrail.

- :class:`HttpPublisher`: ``POST /v1/events`` (standard library only);
- :class:`KafkaPublisher`: the raw topic, through ``confluent-kafka`` (imported when used);
- :class:`InMemoryPublisher`: keeps events in a list (tests, development).
"""

from .base import CLOUDEVENTS_BATCH, CLOUDEVENTS_JSON, Publisher, encode_event
from .http import HttpPublisher
from .kafka import KafkaPublisher
from .memory import InMemoryPublisher

__all__ = [
    "CLOUDEVENTS_BATCH",
    "CLOUDEVENTS_JSON",
    "HttpPublisher",
    "InMemoryPublisher",
    "KafkaPublisher",
    "Publisher",
    "encode_event",
]
