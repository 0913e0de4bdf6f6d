from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from otel_run.demo.backend.api import ai, cfapi
from otel_run.demo.backend.models import Drift


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "service": "reference-backend (stand-in for codeflash-internal)"})


def contract(request: HttpRequest) -> JsonResponse:
    """What the backend did not understand so far (the contract test reads it)."""
    drift = [
        {"endpoint": d.endpoint, "kind": d.kind, "detail": d.detail} for d in Drift.objects.order_by("created", "id")
    ]
    return JsonResponse({"drift": drift})


urlpatterns = [
    path("health", health),
    path("internal/contract", contract),
    path("ai/", ai.urls),
    path("cfapi/", cfapi.urls),
]
