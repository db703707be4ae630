"""authtrail: publish authentication events (CloudEvents) to authtrail.

>>> import authtrail
>>> event = authtrail.login_succeeded(subject="user-1", session_id="sess_1",
...     login_method="password", expires_at="2030-01-01T00:00:00Z", source="/services/web")
>>> authtrail.HttpPublisher("https://authtrail.example", api_key="...").publish(event)  # doctest: +SKIP

Modules: :mod:`authtrail.events` (builders), :mod:`authtrail.validation`,
:mod:`authtrail.publishers`, :mod:`authtrail.introspect`, :mod:`authtrail.ids` and the Django
app :mod:`authtrail.django`.
"""

from .errors import (
    AuthtrailError,
    ConfigurationError,
    DeliveryError,
    EventValidationError,
    ProblemError,
    PublishError,
    TransportError,
)
from .events import (
    BUILDERS,
    Event,
    account_locked,
    account_unlocked,
    build_event,
    default_source,
    device_renamed,
    device_trusted,
    device_untrusted,
    login_failed,
    login_succeeded,
    otp_failed,
    otp_sent,
    otp_verified,
    password_changed,
    session_activity,
    session_logged_out,
    session_revoked,
    set_default_source,
    token_refreshed,
)
from .ids import django_session_id, jwt_session_id, partition_key
from .introspect import Introspector, SessionInfo
from .publishers import HttpPublisher, InMemoryPublisher, KafkaPublisher, Publisher
from .timefmt import format_time, parse_time
from .validation import validate_event
from .version import VERSION

__version__ = VERSION

__all__ = [
    "AuthtrailError", "BUILDERS", "ConfigurationError", "DeliveryError", "Event",
    "EventValidationError", "HttpPublisher", "InMemoryPublisher", "Introspector",
    "KafkaPublisher", "ProblemError", "PublishError", "Publisher", "SessionInfo",
    "TransportError", "__version__", "account_locked", "account_unlocked", "build_event",
    "default_source", "device_renamed", "device_trusted", "device_untrusted",
    "django_session_id", "format_time", "jwt_session_id", "login_failed", "login_succeeded",
    "otp_failed", "otp_sent", "otp_verified", "parse_time", "partition_key",
    "password_changed", "session_activity", "session_logged_out", "session_revoked",
    "set_default_source", "token_refreshed", "validate_event",
]
