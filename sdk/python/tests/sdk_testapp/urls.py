"""Views that use django.contrib.auth exactly as a real project would."""

from __future__ import annotations

import json

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from authtrail.django.sessions import current_session_id


@csrf_exempt
def login_view(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    user = authenticate(request, username=body.get("username"), password=body.get("password"))
    if user is None:
        return JsonResponse({"ok": False}, status=401)
    login(request, user)
    return JsonResponse({"ok": True, "session_id": current_session_id(request)})


@csrf_exempt
def logout_view(request: HttpRequest) -> JsonResponse:
    logout(request)
    return JsonResponse({"ok": True})


def whoami(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse({
        "authenticated": bool(user.is_authenticated),
        "username": user.get_username() if user.is_authenticated else None,
        "session_id": current_session_id(request),
    })


urlpatterns = [
    path("login", login_view),
    path("logout", logout_view),
    path("whoami", whoami),
]
