"""Which imported module triggers which instrumentation.

The bootstrap installs a post-import hook for each trigger module; the first
time a program imports it, :func:`otel_run.instrument._loader.load` loads the
instrumentation. Names are the ``opentelemetry_instrumentor`` entry-point names,
so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switches them off as it does for
``opentelemetry-instrument``.

A static table rather than an entry-point scan: scanning the installed
distributions costs tens of milliseconds per process, this costs nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

INSTRUMENTATIONS: dict[str, tuple[str, str]] = {
    # name: (module whose import triggers it, "module:attribute" that instruments)
    "subprocess": ("subprocess", "otel_run.instrument._subprocess:install"),
    "urllib3": ("urllib3", "opentelemetry.instrumentation.urllib3:URLLib3Instrumentor"),
    "requests": ("requests", "opentelemetry.instrumentation.requests:RequestsInstrumentor"),
    "httpx": ("httpx", "opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor"),
}
"""Instrumentations loaded lazily. ``subprocess`` is otel-run's own light
instrumentation (it needs no SDK); the others are the official OpenTelemetry
instrumentations, loaded with the SDK."""

SDK_TRIGGER = "opentelemetry.trace"
"""A program that uses the OpenTelemetry API itself gets the SDK configured."""


def triggers(disabled: Iterable[str] = ()) -> dict[str, Callable[[Any], None]]:
    """Post-import callbacks by module name, without the disabled ones."""
    skip = set(disabled)
    out: dict[str, Callable[[Any], None]] = {}
    for name, (module, _target) in INSTRUMENTATIONS.items():
        if name not in skip:
            out[module] = _callback(name)
    out[SDK_TRIGGER] = _callback("")
    return out


def _callback(name: str) -> Callable[[Any], None]:
    def fire(_module: Any) -> None:
        from otel_run.instrument._loader import load

        load(name)

    return fire
