"""``SubprocessInstrumentor``: the ``subprocess`` instrumentation for stock
OpenTelemetry tooling (``opentelemetry-instrument``, manual set-up).

Under otel-run the same patches run without this class and without the SDK
(see :mod:`._subprocess`); this class plugs them into the OpenTelemetry API.

    from otel_run.instrument.subprocess import SubprocessInstrumentor
    SubprocessInstrumentor().instrument()
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_run import __version__
from otel_run.instrument import _subprocess


class SubprocessInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans for ``subprocess.Popen`` calls, trace context in the child's
    environment (``TRACEPARENT``), exit status and resource usage."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # the standard library

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        _subprocess.install(_subprocess.ApiRecorder(tracer))

    def _uninstrument(self, **kwargs: Any) -> None:
        _subprocess.uninstall()
