"""Django settings of the reference backend (configured from the environment)."""

from __future__ import annotations

import os
import tempfile

from otel_run import _env

SECRET_KEY = "reference-backend-not-secret"  # a loopback stand-in: no sessions, no users
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
INSTALLED_APPS = ["otel_run.demo.backend"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "otel_run.demo.backend.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(_env.OTEL_RUN_BACKEND_DB)
        or os.path.join(tempfile.gettempdir(), "otel-run-backend.sqlite3"),
        "OPTIONS": {"timeout": 30},
    }
}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

LLM_BASE_URL = os.environ.get(_env.OTEL_RUN_BACKEND_LLM_URL, "http://127.0.0.1:8100/v1")
LLM_MODEL = os.environ.get(_env.OTEL_RUN_BACKEND_LLM_MODEL, "gpt-4.1")
LLM_API_KEY = os.environ.get(_env.OPENAI_API_KEY, "replay")
