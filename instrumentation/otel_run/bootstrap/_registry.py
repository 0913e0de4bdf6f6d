"""Which imported module triggers which instrumentation.

The bootstrap installs a post-import hook for each trigger module; the first
time a program imports it, :func:`otel_run.instrument._loader.load` loads the
instrumentation — or, for the HTTP clients and OpenAI, arms it to load at the
first call (:data:`FIRST_USE`). Names are the ``opentelemetry_instrumentor`` entry-point names,
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
    "openai": ("openai", "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor"),
    # Django reads its settings when instrumented: armed on the handler module,
    # applied just before the first handler loads its middleware (see _loader)
    "django": ("django.core.handlers.base", "opentelemetry.instrumentation.django:DjangoInstrumentor"),
    "sqlite3": ("sqlite3", "opentelemetry.instrumentation.sqlite3:SQLite3Instrumentor"),
    "codeflash": ("codeflash.optimization.optimizer", "otel_run.instrument.codeflash:CodeflashInstrumentor"),
    "docker": ("docker.models.containers", "otel_run.instrument.docker:DockerInstrumentor"),
}
"""Instrumentations loaded lazily. ``subprocess`` is otel-run's own light
instrumentation (it needs no SDK); ``codeflash`` and ``docker`` are otel-run's; the others are
the official OpenTelemetry instrumentations, loaded with the SDK."""

FIRST_USE: dict[str, tuple[tuple[str, str, str], ...]] = {
    # name: the (module, class, method) calls that load it, instead of the import
    "urllib3": (("urllib3.connectionpool", "HTTPConnectionPool", "urlopen"),),
    "requests": (("requests.sessions", "Session", "send"),),
    "httpx": (("httpx", "HTTPTransport", "handle_request"), ("httpx", "AsyncHTTPTransport", "handle_async_request")),
    "openai": (
        ("openai.resources.chat.completions", "Completions", "create"),
        ("openai.resources.chat.completions", "AsyncCompletions", "create"),
        ("openai.resources.embeddings", "Embeddings", "create"),
        ("openai.resources.embeddings", "AsyncEmbeddings", "create"),
    ),
}
"""Instrumentations loaded at the first *call* into their library rather than at
its import: a process that imports ``requests`` and never sends a request (every
pytest run under codeflash: its plugin imports it) pays nothing for the SDK.
These are the methods the official instrumentations wrap; until the first call
each holds a stub that loads the instrumentation and passes the call on (see
:func:`otel_run.instrument._loader.arm`)."""

OPT_IN = frozenset({"sqlite3"})
"""Off unless named in ``OTEL_RUN_INSTRUMENTATIONS`` or ``otel_run.setup(instrumentations=...)``:
a span per query costs too much in programs that did not ask (codeflash's own
tracer writes to SQLite on every call it records)."""

SDK_TRIGGER = "opentelemetry.trace"
"""A program that uses the OpenTelemetry API itself gets the SDK configured."""


def triggers(
    disabled: Iterable[str] = (), enabled: Iterable[str] = (), only: Iterable[str] | None = None
) -> dict[str, Callable[[Any], None]]:
    """Post-import callbacks by module name: every default instrumentation and
    the ``enabled`` opt-in ones, without the ``disabled`` ones (or just ``only``)."""
    skip, on = set(disabled), set(enabled)
    names = set(only) if only is not None else set(INSTRUMENTATIONS)
    out: dict[str, Callable[[Any], None]] = {}
    for name, (module, _target) in INSTRUMENTATIONS.items():
        if name in names and name not in skip and (name not in OPT_IN or name in on):
            out[module] = _callback(name)
    if only is None:
        out[SDK_TRIGGER] = _callback("")
    return out


def _callback(name: str) -> Callable[[Any], None]:
    def fire(_module: Any) -> None:
        from otel_run.instrument._loader import arm, load

        if name in FIRST_USE:
            arm(name)
        else:
            load(name)

    return fire
