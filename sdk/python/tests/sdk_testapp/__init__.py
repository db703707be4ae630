"""A minimal Django project for the SDK tests: login, logout and whoami views."""

from __future__ import annotations

from typing import Any


def subject_for(user: Any) -> str:
    """Subjects unique per username, so runs against one server never share a user id."""
    return f"sdkpy-{user.get_username()}"
