"""The exceptions the SDK raises. Every one derives from :class:`AuthtrailError`."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple


class AuthtrailError(Exception):
    """Base class of every error raised by the authtrail SDK."""


class ConfigurationError(AuthtrailError):
    """The SDK is not configured well enough to do what was asked (e.g. no ``source``)."""


class EventValidationError(AuthtrailError, ValueError):
    """An event breaks the contract (``events/README.md``).

    ``field`` is the path at fault, as authtrail names it (``data.session_id``, ``time``,
    ``(event)`` for the whole message); ``reason`` says why. The message never echoes a value,
    so it is safe to log.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PublishError(AuthtrailError):
    """An event (or several) could not be published."""


class DeliveryError(PublishError):
    """The broker did not acknowledge one or more events.

    ``failures`` holds ``(event id, error text)`` pairs, in the order they were reported.
    """

    def __init__(self, failures: Sequence[Tuple[str, str]]) -> None:
        self.failures = list(failures)
        shown = "; ".join(f"{event_id}: {error}" for event_id, error in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} event(s) not delivered: {shown}{more}")


class ProblemError(PublishError):
    """authtrail answered with an error status and an RFC 9457 problem-details body.

    ``problem`` is the decoded body (``type``, ``title``, ``status``, ``detail`` and any
    extension members such as ``errors``), or a minimal one built from the status when the
    body was not a problem document.
    """

    def __init__(self, status: int, problem: Mapping[str, Any],
                 retry_after: Optional[float] = None) -> None:
        self.status = status
        #: Seconds the server asked to wait (``Retry-After``), when it said.
        self.retry_after = retry_after
        self.problem: dict[str, Any] = dict(problem)
        title = self.problem.get("title") or "HTTP error"
        detail = self.problem.get("detail")
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))

    @property
    def type(self) -> Optional[str]:
        """The problem type URI, if the body had one."""
        value = self.problem.get("type")
        return value if isinstance(value, str) else None

    @property
    def detail(self) -> Optional[str]:
        """The human-readable explanation, if the body had one."""
        value = self.problem.get("detail")
        return value if isinstance(value, str) else None

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed (5xx, 408, 429)."""
        return self.status >= 500 or self.status in (408, 429)


class TransportError(PublishError):
    """authtrail could not be reached (connection refused, timeout, TLS failure, ...)."""
