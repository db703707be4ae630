"""The ``AUTHTRAIL`` setting.

.. code-block:: python

    AUTHTRAIL = {
        "SOURCE": "/services/django",            # required: the events' source
        "PUBLISHER": {                           # an instance, a dotted path to a factory or
            "BACKEND": "kafka",                  # class, or BACKEND ("kafka", "http",
            "OPTIONS": {"brokers": "kafka:9092"},# "memory" or a dotted path) with OPTIONS
        },
        "TRUSTED_PROXIES": [],                   # see authtrail.django.request.client_ip
        "LOGIN_METHOD": "password",              # login.succeeded/failed login_method
        "SUBJECT": None,                         # dotted path: user -> user id (default pk)
        "IDENTIFIER": None,                      # dotted path: user -> identifier (username)
        "ROLES": None,                           # dotted path: user -> list of roles, or None
        "DEVICE_ID": None,                       # dotted path: request -> device id, or None
        "LOOKUP_FAILED_USERS": True,             # login.failed: look the identifier's user up
        "RAISE_ERRORS": False,                   # False: log publishing errors, never fail a login
        "INTROSPECTION": {"URL": "...", "API_KEY": "...", "CACHE_SECONDS": 5, "TIMEOUT": 2},
        "ACTIVE_SESSION": {"GRACE_SECONDS": 30, "FAIL_OPEN": False, "ON_INACTIVE": "logout"},
    }

The publisher and introspector are built once and rebuilt when the setting changes
(``override_settings`` in tests). A publisher built here is flushed when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Callable, Dict, Mapping, Optional

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ..errors import AuthtrailError, ConfigurationError
from ..events import Event
from ..introspect import Introspector
from ..publishers import Publisher

log = logging.getLogger("authtrail")

_BACKENDS = {
    "kafka": "authtrail.publishers.KafkaPublisher",
    "http": "authtrail.publishers.HttpPublisher",
    "memory": "authtrail.publishers.InMemoryPublisher",
}

DEFAULTS: Dict[str, Any] = {
    "SOURCE": None,
    "PUBLISHER": None,
    "TRUSTED_PROXIES": [],
    "LOGIN_METHOD": "password",
    "SUBJECT": None,
    "IDENTIFIER": None,
    "ROLES": None,
    "DEVICE_ID": None,
    "LOOKUP_FAILED_USERS": True,
    "RAISE_ERRORS": False,
    "INTROSPECTION": None,
    "ACTIVE_SESSION": {},
}

ACTIVE_SESSION_DEFAULTS: Dict[str, Any] = {
    "GRACE_SECONDS": 30.0,
    "FAIL_OPEN": False,
    "ON_INACTIVE": "logout",
}

_lock = threading.Lock()
_publisher: Optional[Publisher] = None
_introspector: Optional[Introspector] = None


def setting(name: str) -> Any:
    """One member of ``settings.AUTHTRAIL``, or its default."""
    configured = getattr(settings, "AUTHTRAIL", None) or {}
    if name not in DEFAULTS:
        raise KeyError(name)
    return configured.get(name, DEFAULTS[name])


def source() -> str:
    """``AUTHTRAIL["SOURCE"]`` (required)."""
    value = setting("SOURCE")
    if not isinstance(value, str) or not value:
        raise ConfigurationError('settings.AUTHTRAIL["SOURCE"] is required, e.g. "/services/django"')
    return value


def active_session_setting(name: str) -> Any:
    """One member of ``AUTHTRAIL["ACTIVE_SESSION"]``, or its default."""
    configured = setting("ACTIVE_SESSION") or {}
    return configured.get(name, ACTIVE_SESSION_DEFAULTS[name])


def hook(name: str) -> Optional[Callable[..., Any]]:
    """The callable a setting names (a dotted path or a callable), or ``None``."""
    value = setting(name)
    if value is None:
        return None
    return import_string(value) if isinstance(value, str) else value  # type: ignore[no-any-return]


def _build_publisher(value: Any) -> Publisher:
    if value is None:
        raise ConfigurationError('settings.AUTHTRAIL["PUBLISHER"] is required')
    if isinstance(value, str):
        return import_string(_BACKENDS.get(value, value))()  # type: ignore[no-any-return]
    if isinstance(value, Mapping):
        backend = value.get("BACKEND")
        if not isinstance(backend, str):
            raise ConfigurationError('AUTHTRAIL["PUBLISHER"]["BACKEND"] must name a publisher')
        options = dict(value.get("OPTIONS") or {})
        return import_string(_BACKENDS.get(backend, backend))(**options)  # type: ignore[no-any-return]
    if isinstance(value, type) or (callable(value) and not hasattr(value, "publish")):
        return value()  # type: ignore[no-any-return]  # a class or a factory
    return value  # type: ignore[no-any-return]


def publisher() -> Publisher:
    """The configured publisher (built on first use)."""
    global _publisher
    with _lock:
        if _publisher is None:
            _publisher = _build_publisher(setting("PUBLISHER"))
        return _publisher


def _build_introspector(value: Any) -> Introspector:
    if value is None:
        raise ConfigurationError('settings.AUTHTRAIL["INTROSPECTION"] is required for introspection')
    if isinstance(value, str):
        return import_string(value)()  # type: ignore[no-any-return]
    if isinstance(value, Mapping):
        return Introspector(
            value["URL"],
            value.get("API_KEY"),
            bearer_token=value.get("BEARER_TOKEN"),
            timeout=float(value.get("TIMEOUT", 2.0)),
            cache_seconds=float(value.get("CACHE_SECONDS", 5.0)),
        )
    if isinstance(value, type) or (callable(value) and not hasattr(value, "session")):
        return value()  # type: ignore[no-any-return]  # a class or a factory
    return value  # type: ignore[no-any-return]


def introspector() -> Introspector:
    """The configured introspector (built on first use)."""
    global _introspector
    with _lock:
        if _introspector is None:
            _introspector = _build_introspector(setting("INTROSPECTION"))
        return _introspector


def reset() -> None:
    """Forgets the built publisher and introspector (flushing the publisher)."""
    global _publisher, _introspector
    with _lock:
        old, _publisher, _introspector = _publisher, None, None
    if old is not None:
        _flush_quietly(old)


def _flush_quietly(pub: Publisher) -> None:
    try:
        pub.flush(5.0)
    except AuthtrailError as error:
        log.error("authtrail: flushing the publisher failed: %s", error)


def emit(build: Callable[[], Event]) -> Optional[Event]:
    """Builds an event and publishes it with the configured publisher.

    Returns the event, or ``None`` when building or publishing failed and
    ``RAISE_ERRORS`` is false (the error is logged — by field and reason, never with values).
    """
    try:
        event = build()
        publisher().publish(event)
        return event
    except Exception as error:  # noqa: BLE001 - a broken audit trail must not break logins
        if setting("RAISE_ERRORS"):
            raise
        log.exception("authtrail: event not published: %s", error)
        return None


def _on_setting_changed(setting: str, **_kwargs: Any) -> None:
    if setting == "AUTHTRAIL":
        reset()


def connect() -> None:
    """Rebuilds the publisher when ``AUTHTRAIL`` changes; flushes it when the process exits."""
    setting_changed.connect(_on_setting_changed, dispatch_uid="authtrail.django.conf")


@atexit.register
def _flush_at_exit() -> None:
    pub = _publisher
    if pub is not None:
        _flush_quietly(pub)
