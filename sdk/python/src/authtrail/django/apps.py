"""The Django app: connects the signal receivers when Django starts."""

from __future__ import annotations

from django.apps import AppConfig


class AuthtrailConfig(AppConfig):
    """``authtrail.django``: publishes authentication events to authtrail."""

    name = "authtrail.django"
    label = "authtrail_django"
    verbose_name = "authtrail"

    def ready(self) -> None:
        from . import conf, receivers

        receivers.connect()
        conf.connect()
