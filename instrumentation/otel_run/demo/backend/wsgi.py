"""The reference backend's WSGI application. Instrumented the way
codeflash-internal would adopt it: one call before the application is built."""

from __future__ import annotations

import os

import otel_run

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_run.demo.backend.settings")
otel_run.setup("codeflash-backend", instrumentations=["sqlite3"])

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after the one-call set-up

application = get_wsgi_application()
