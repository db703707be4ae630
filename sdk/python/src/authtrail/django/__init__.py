"""Django integration: ``INSTALLED_APPS += ["authtrail.django"]``.

Publishes ``login.succeeded``, ``session.logged_out`` and ``login.failed`` for Django's
``user_logged_in``, ``user_logged_out`` and ``user_login_failed`` signals, offers hooks for
token stacks that never call ``login()`` (:mod:`authtrail.django.tokens`,
:mod:`authtrail.django.simplejwt`) and a middleware that ends sessions authtrail says are no
longer active (:mod:`authtrail.django.middleware`). Configuration: the ``AUTHTRAIL`` setting,
see :mod:`authtrail.django.conf`.

Session ids: a Django session key is a bearer credential and is never published; the session's
authtrail id is :func:`authtrail.ids.django_session_id` of the key at login
(``"dj_" + sha256(key)[:32]``), kept in the session so it survives key rotation
(:func:`authtrail.django.sessions.current_session_id`).
"""

from ..ids import django_session_id, jwt_session_id

__all__ = ["django_session_id", "jwt_session_id"]
