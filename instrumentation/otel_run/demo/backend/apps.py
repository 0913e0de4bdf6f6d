from __future__ import annotations

from django.apps import AppConfig


class BackendConfig(AppConfig):  # type: ignore[misc]
    name = "otel_run.demo.backend"
    label = "backend"
    default_auto_field = "django.db.models.BigAutoField"
