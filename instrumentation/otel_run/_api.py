"""The public API: :func:`stage` and :func:`setup` (re-exported by ``otel_run``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TypeVar

from otel_run import __version__, _env

F = TypeVar("F", bound=Callable[..., Any])
_tracer: Any = None


class stage:  # used like a function: ``with stage("x")``
    """A span around one stage of work, as a context manager or a decorator.

    ::

        with stage("prompt.assemble", endpoint="/ai/optimize"):
            prompt = assemble(request)

        @stage("result.store")
        def store(result): ...

    Costs next to nothing when no SDK is configured (the OpenTelemetry API's
    no-op tracer). Exceptions are recorded on the span and re-raised.
    """

    __slots__ = ("_context", "attributes", "name")

    def __init__(self, name: str, **attributes: Any) -> None:
        self.name = name
        self.attributes = attributes
        self._context: Any = None

    def __enter__(self) -> Any:
        self._context = _get_tracer().start_as_current_span(self.name, attributes=self.attributes or None)
        return self._context.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._context.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        name, attributes = self.name, self.attributes

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with stage(name, **attributes):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def setup(
    service_name: str | None = None,
    *,
    instrumentations: Iterable[str] = (),
    environ: MutableMapping[str, str] | None = None,
) -> None:
    """Trace this service, in one call (for example in ``wsgi.py``).

    Under ``otel-run`` the process is traced already and this only names the
    service and switches on ``instrumentations`` that are opt-in (``sqlite3``).
    Otherwise it bootstraps the process the way otel-run would: its spans go to
    the embedded store (``OTEL_RUN_STORE``), and, when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, also to that collector through the
    official OTLP exporter. Libraries are instrumented as they are imported
    (Django, OpenAI, httpx, requests, ...). Never raises.
    """
    environ = os.environ if environ is None else environ
    try:
        from otel_run.bootstrap import _boot, _imports
        from otel_run.store._layout import store_root

        name = environ.get(_env.OTEL_SERVICE_NAME) or service_name
        if _boot.PROCESS is None:
            _boot.start_standalone(environ, store_root(environ), service_name=name)
        elif name:
            _boot.PROCESS.rename(name)
        for instrumentation in instrumentations:
            _imports.enable_instrumentation(instrumentation)
        from otel_run.instrument import _sdk

        provider = _sdk.ensure_provider()
        if provider is not None and (
            environ.get(_env.OTEL_EXPORTER_OTLP_ENDPOINT) or environ.get(_env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        ):
            _sdk.add_otlp_exporter(provider)
    except Exception as exc:
        from otel_run._wire import debug

        debug(f"otel_run.setup failed: {exc!r}")


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer("otel_run.stage", __version__)
    return _tracer
