"""Loads an instrumentation the moment the library it instruments is imported.

Called by the bootstrap's post-import hook (see :mod:`otel_run.bootstrap._registry`). Every load
is itself recorded as a span (``otel-run load <name>``), so the tracer's own
cost shows in the trace it produces instead of hiding in the program's time.
Failures are logged (``OTEL_RUN_DEBUG=1``) and never reach the program.
"""

from __future__ import annotations

import importlib
from time import time_ns

from otel_run.bootstrap import _boot
from otel_run.bootstrap._registry import INSTRUMENTATIONS

_loaded: set[str] = set()


def load(name: str) -> None:
    """Load instrumentation ``name`` ("" loads only the SDK)."""
    if name in _loaded or _boot.PROCESS is None:
        return
    if name == "subprocess":
        from otel_run.instrument import _subprocess

        _loaded.add(name)
        _subprocess.install()  # a few microseconds and no SDK: not worth a span
        return
    from otel_run.instrument import _sdk

    if _sdk.is_loading() or (not name and _sdk.PROVIDER is not None):
        return  # the SDK importing the API itself, or already set up
    _loaded.add(name)
    start = time_ns()
    parent = _boot.current_parent_span_id()
    error: BaseException | None = None
    try:
        provider = _sdk.ensure_provider()
        if provider is not None and name == "django":
            _arm_django(provider)
        elif provider is not None and name:
            from otel_run.instrument import _http

            _module, target = INSTRUMENTATIONS[name]
            instrumentor = _resolve(target)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=provider, **_http.hooks(name))
            _http.track_connections(name)
    except Exception as exc:
        error = exc
        _boot.debug(f"instrumentation {name or 'sdk'!r} not loaded: {exc!r}")
    finally:
        _record(name or "sdk", start, parent, error)


def _arm_django(provider: object) -> None:
    """Django's instrumentor reads (and, if unset, configures!) the settings, so
    it runs just before the first request handler loads its middleware, when
    the settings are certainly there."""
    from django.core.handlers import base

    original = base.BaseHandler.load_middleware
    if getattr(original, "_otel_run_wrapped", False):
        return

    def load_middleware(self: object, *args: object, **kwargs: object) -> object:
        base.BaseHandler.load_middleware = original  # type: ignore[method-assign]
        try:
            _module, target = INSTRUMENTATIONS["django"]
            instrumentor = _resolve(target)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=provider)
        except Exception as exc:
            _boot.debug(f"instrumentation 'django' not loaded: {exc!r}")
        return original(self, *args, **kwargs)

    load_middleware._otel_run_wrapped = True  # type: ignore[attr-defined]
    base.BaseHandler.load_middleware = load_middleware  # type: ignore[method-assign]


def _resolve(target: str) -> type:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


def _record(name: str, start: int, parent: str, error: BaseException | None) -> None:
    process = _boot.PROCESS
    if process is None:
        return
    try:
        status = (_boot.STATUS_ERROR, repr(error)) if error is not None else (_boot.STATUS_UNSET, "")
        span = _boot.span_json(
            process.trace_id,
            _boot.new_span_id(),
            parent,
            f"otel-run load {name}",
            start,
            time_ns(),
            {"otel_run.instrumentation": name},
            status=status,
        )
        process.writer.write(process.trace_id, _boot.request_json(process.resource_json, _boot.OTEL_RUN_SCOPE, [span]))
    except Exception as exc:
        _boot.debug(f"load span not written: {exc!r}")
