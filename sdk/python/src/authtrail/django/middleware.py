"""``ActiveSessionMiddleware``: ends Django sessions that authtrail says are no longer active
(revoked by an admin or the user, expired, logged out elsewhere) — the ``validateSession`` of
the auth service, asked through :class:`~authtrail.introspect.Introspector`.

Add it after ``AuthenticationMiddleware``::

    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "authtrail.django.middleware.ActiveSessionMiddleware", ...]

and configure ``AUTHTRAIL["INTROSPECTION"]`` (URL, API key with scope ``introspect``,
``CACHE_SECONDS``) and optionally ``AUTHTRAIL["ACTIVE_SESSION"]``:

- ``GRACE_SECONDS`` (30): authtrail projects events asynchronously, so a session announced at
  login is not active there for a moment; within this many seconds of the login it is not asked.
- ``FAIL_OPEN`` (False): when authtrail cannot be asked, treat the session as inactive (fail
  closed, like the Node middleware); with True, let the request through (logged).
- ``ON_INACTIVE`` (``"logout"``): log the user out and go on anonymously (``login_required``
  views redirect to the login page); ``"refuse"``: log out and answer 401 with a problem body.

Only sessions announced by the integration (with an authtrail id) are checked. Logging a user
out here publishes nothing: authtrail already knows the session ended.
"""

from __future__ import annotations

import logging
from typing import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..errors import AuthtrailError
from . import conf, sessions
from .receivers import SKIP_LOGOUT_EVENT

log = logging.getLogger("authtrail")


class ActiveSessionMiddleware:
    """Checks every authenticated request's session with authtrail (see the module doc)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self._active(request):
            setattr(request, SKIP_LOGOUT_EVENT, True)
            logout(request)
            if conf.active_session_setting("ON_INACTIVE") == "refuse":
                return JsonResponse(
                    {"type": "about:blank", "title": "Session ended", "status": 401,
                     "detail": "This session is no longer active; sign in again."},
                    status=401, content_type="application/problem+json")
        return self.get_response(request)

    def _active(self, request: HttpRequest) -> bool:
        session_id = sessions.current_session_id(request)
        if session_id is None:
            return True
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True
        age = sessions.login_age(request)
        if age is not None and age < float(conf.active_session_setting("GRACE_SECONDS")):
            return True
        try:
            info = conf.introspector().session(session_id)
        except AuthtrailError as error:
            fail_open = bool(conf.active_session_setting("FAIL_OPEN"))
            log.warning("authtrail: introspection failed (%s); %s", error,
                        "letting the request through" if fail_open else "ending the session")
            return fail_open
        if info.active:
            setattr(request, "authtrail_session", info)  # noqa: B010 - not an HttpRequest attribute
        return info.active


__all__ = ["ActiveSessionMiddleware"]
