"""The replay server's WSGI entry point (``otel_run.demo.replay.wsgi:application``):
the app configured from the environment, so any WSGI server can host it, traced
by otel-run and wrapped in the official OpenTelemetry WSGI middleware, so its
server spans continue the trace of the client that called it."""

from __future__ import annotations

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

import otel_run
from otel_run.demo.replay._app import app_from_environ

otel_run.setup("llm-replay")
application = OpenTelemetryMiddleware(app_from_environ())
