"""Drop-in views and serializers for ``djangorestframework-simplejwt``.

.. code-block:: python

    from authtrail.django.simplejwt import AuthtrailTokenObtainPairView, AuthtrailTokenRefreshView
    urlpatterns = [
        path("api/token/", AuthtrailTokenObtainPairView.as_view()),
        path("api/token/refresh/", AuthtrailTokenRefreshView.as_view()),
    ]

Obtaining a pair publishes ``login.succeeded`` (session id :func:`~authtrail.ids.jwt_session_id`
of the refresh token's ``jti``, written into both tokens as the ``sid`` claim); a refresh
publishes ``token.refreshed`` when ``ROTATE_REFRESH_TOKENS`` is on and ``session.activity``
otherwise. Failed logins are published by the ``user_login_failed`` receiver, since simplejwt
calls ``authenticate``. Importing this module needs simplejwt; nothing else in the SDK does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenObtainSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from ..ids import jwt_session_id
from . import tokens

#: The claim carrying the authtrail session id.
SESSION_CLAIM = "sid"


def _user(user_id: Any) -> Any:
    """The user a token names (so ``AUTHTRAIL["SUBJECT"]`` applies as at login), or the id
    itself as a string when the user cannot be loaded."""
    model = get_user_model()
    try:
        return model._default_manager.get(**{api_settings.USER_ID_FIELD: user_id})
    except (model.DoesNotExist, ValueError, TypeError):
        return str(user_id)


def _expiry(token: Any) -> datetime:
    return datetime.fromtimestamp(int(token["exp"]), tz=timezone.utc)


class AuthtrailTokenObtainPairSerializer(TokenObtainPairSerializer):
    """Adds the ``sid`` claim and publishes ``login.succeeded``."""

    @classmethod
    def get_token(cls, user: Any) -> Any:
        token = super().get_token(user)
        token[SESSION_CLAIM] = jwt_session_id(str(token[api_settings.JTI_CLAIM]))
        return token

    def validate(self, attrs: Dict[str, Any]) -> Dict[str, Any]:
        data: Dict[str, Any] = TokenObtainSerializer.validate(self, attrs)
        refresh = self.get_token(self.user)
        data["refresh"] = str(refresh)
        data["access"] = str(refresh.access_token)
        if api_settings.UPDATE_LAST_LOGIN:
            from django.contrib.auth.models import update_last_login

            update_last_login(None, self.user)  # type: ignore[arg-type]
        tokens.token_issued(
            self.context.get("request"),
            self.user,
            jti=str(refresh[api_settings.JTI_CLAIM]),
            expires_at=_expiry(refresh),
            session_id=str(refresh[SESSION_CLAIM]),
        )
        return data


class AuthtrailTokenRefreshSerializer(TokenRefreshSerializer):
    """Publishes ``token.refreshed`` (rotation) or ``session.activity`` for a refresh."""

    def validate(self, attrs: Dict[str, Any]) -> Dict[str, Any]:
        presented = self.token_class(attrs["refresh"])  # verifies; raises like super() would
        old_jti = str(presented[api_settings.JTI_CLAIM])
        user = _user(presented.get(api_settings.USER_ID_CLAIM))
        session_id = str(presented.get(SESSION_CLAIM) or jwt_session_id(old_jti))
        data: Dict[str, Any] = super().validate(attrs)
        request = self.context.get("request")
        if "refresh" in data:
            rotated = RefreshToken(data["refresh"], verify=False)
            tokens.token_refreshed(request, user, session_id, old_jti,
                                   str(rotated[api_settings.JTI_CLAIM]), _expiry(rotated))
        else:
            tokens.token_used(request, user, session_id)
        return data


class AuthtrailTokenObtainPairView(TokenObtainPairView):
    """``TokenObtainPairView`` that publishes the login."""

    serializer_class = AuthtrailTokenObtainPairSerializer


class AuthtrailTokenRefreshView(TokenRefreshView):
    """``TokenRefreshView`` that publishes the refresh."""

    serializer_class = AuthtrailTokenRefreshSerializer
