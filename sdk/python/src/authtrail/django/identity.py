"""Who a user is in events: subject, identifier and roles (configurable, see conf)."""

from __future__ import annotations

from typing import Any, List, Optional

from . import conf


def subject(user: Any) -> str:
    """The user id published as ``subject``: ``AUTHTRAIL["SUBJECT"](user)``, else the primary
    key. A string is taken as the id itself (token hooks get ids from claims)."""
    if isinstance(user, str):
        return user
    custom = conf.hook("SUBJECT")
    if custom is not None:
        return str(custom(user))
    return str(user.pk)


def identifier(user: Any) -> Optional[str]:
    """What the user signs in with: ``AUTHTRAIL["IDENTIFIER"](user)``, else the username."""
    if isinstance(user, str):
        return None
    custom = conf.hook("IDENTIFIER")
    if custom is not None:
        value = custom(user)
        return None if value is None else str(value)
    get_username = getattr(user, "get_username", None)
    return str(get_username()) if callable(get_username) else None


def roles(user: Any) -> Optional[List[str]]:
    """``AUTHTRAIL["ROLES"](user)``, or ``None`` (no roles published)."""
    if isinstance(user, str):
        return None
    custom = conf.hook("ROLES")
    if custom is None:
        return None
    value = custom(user)
    return None if value is None else [str(r) for r in value]


def device_id(request: Any) -> Optional[str]:
    """``AUTHTRAIL["DEVICE_ID"](request)``, or ``None``."""
    custom = conf.hook("DEVICE_ID")
    if custom is None or request is None:
        return None
    value = custom(request)
    return None if value is None else str(value)


def login_method(request: Any, default: Optional[str] = None) -> str:
    """``request.authtrail_login_method`` if a view set it, else ``default``, else
    ``AUTHTRAIL["LOGIN_METHOD"]``."""
    chosen = getattr(request, "authtrail_login_method", None) if request is not None else None
    return str(chosen or default or conf.setting("LOGIN_METHOD"))
