"""Shared set-up: Django configured with an in-memory SQLite database and the test app, and
helpers to find the repository's contract files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import django
import pytest
from django.conf import settings

#: The repository root (sdk/python/tests/ -> ../../..), overridable with AUTHTRAIL_REPO.
REPO = Path(os.environ.get("AUTHTRAIL_REPO") or Path(__file__).resolve().parents[3])
EXAMPLES = REPO / "events" / "examples"
SCHEMAS = REPO / "events" / "schema"
#: Types only authtrail itself appends: no builder.
AUTHTRAIL_ONLY = {"admin.action", "security_event.reviewed"}

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
LONDON_IP = "81.2.69.142"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="authtrail-sdk-tests-not-a-secret",
        USE_TZ=True,
        ALLOWED_HOSTS=["testserver", "localhost"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "authtrail.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="sdk_testapp.urls",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        AUTHTRAIL={
            "SOURCE": "/services/django-tests",
            "PUBLISHER": "memory",
            "SUBJECT": "sdk_testapp.subject_for",
            "RAISE_ERRORS": True,
        },
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)


def example_files() -> List[Path]:
    """Every example event of the contract."""
    return sorted(EXAMPLES.glob("*.json"))


def load(path: Path) -> Dict[str, Any]:
    """One example event."""
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def publishable_examples() -> List[Tuple[str, Dict[str, Any]]]:
    """``(file name, event)`` of every example a service may publish."""
    out = []
    for path in example_files():
        event = load(path)
        if event["type"] not in AUTHTRAIL_ONLY:
            out.append((path.name, event))
    return out


@pytest.fixture
def memory_publisher() -> Iterator[Any]:
    """The Django integration's publisher (an InMemoryPublisher), emptied around each test."""
    from authtrail.django import conf

    pub = conf.publisher()
    pub.clear()
    yield pub
    pub.clear()
