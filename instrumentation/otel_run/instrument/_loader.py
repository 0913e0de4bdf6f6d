"""Loads an instrumentation when the library it instruments is imported — or,
for the HTTP clients and OpenAI, at the first call into it.

Called by the bootstrap's post-import hook (see :mod:`otel_run.bootstrap._imports`). Every load
is itself recorded as a span (``otel-run load <name>``), so the tracer's own
cost shows in the trace it produces instead of hiding in the program's time.
Failures are logged (``OTEL_RUN_DEBUG=1``) and never reach the program.
"""

from __future__ import annotations

import importlib
from _thread import RLock
from time import time_ns
from typing import Any

from otel_run import _wire
from otel_run.bootstrap import _boot, _imports
from otel_run.bootstrap._imports import FIRST_USE, INSTRUMENTATIONS

_loaded: set[str] = set()
_armed: dict[str, list[_Stub]] = {}
_lock = RLock()


class _Stub:
    """Stands in for one method until the first call: then puts the method back
    (if nothing wrapped it since), loads the instrumentation, which wraps it,
    and passes the call on to whatever is there now."""

    __slots__ = ("attr", "function", "name", "original", "owner", "restored")

    def __init__(self, name: str, owner: Any, attr: str, original: Any) -> None:
        self.name, self.owner, self.attr, self.original = name, owner, attr, original
        self.restored = False
        self.function = self._make()

    def _make(self) -> Any:
        original = self.original

        def first_use(*args: Any, **kwargs: Any) -> Any:
            if self.name in _armed:
                _activate(self.name)
            if self.restored:  # the class holds the instrumented method now
                return getattr(self.owner, self.attr)(*args, **kwargs)
            return original(*args, **kwargs)  # something wrapped us meanwhile: it got instrumented instead

        first_use.__name__ = getattr(original, "__name__", self.attr)
        first_use.__qualname__ = getattr(original, "__qualname__", self.attr)
        first_use.__doc__ = getattr(original, "__doc__", None)
        first_use.__wrapped__ = original  # type: ignore[attr-defined]
        return first_use


def arm(name: str) -> None:
    """Load ``name`` at the first call of one of its :data:`FIRST_USE` methods
    (installed in each method's module now or when that module is imported)."""
    if name in _loaded or name in _armed or _boot.PROCESS is None:
        return
    _armed[name] = []
    for module, owner, attr in FIRST_USE[name]:
        if not _imports.when_imported(module, _installer(name, owner, attr)):
            _activate(name)  # no import hook: load now
            return


def _installer(name: str, owner: str, attr: str) -> Any:
    return lambda module: _install(name, module, owner, attr)


def _install(name: str, module: Any, owner_name: str, attr: str) -> None:
    with _lock:
        stubs = _armed.get(name)
        if stubs is None:  # loaded meanwhile
            return
        owner = getattr(module, owner_name, None)
        original = getattr(owner, "__dict__", {}).get(attr)
        if not callable(original):
            _wire.debug(f"first-use hook {module.__name__}.{owner_name}.{attr} not found: loading {name} now")
            _activate(name)
            return
        stub = _Stub(name, owner, attr, original)
        setattr(owner, attr, stub.function)
        stubs.append(stub)


def _activate(name: str) -> None:
    with _lock:
        stubs = _armed.pop(name, None)
        if stubs is None:
            return
        for stub in stubs:
            if stub.owner.__dict__.get(stub.attr) is stub.function:
                setattr(stub.owner, stub.attr, stub.original)
                stub.restored = True
        load(name)


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
        _wire.debug(f"instrumentation {name or 'sdk'!r} not loaded: {exc!r}")
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
            _wire.debug(f"instrumentation 'django' not loaded: {exc!r}")
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
        status = (_wire.STATUS_ERROR, repr(error)) if error is not None else (_wire.STATUS_UNSET, "")
        span = _wire.span_json(
            process.trace_id,
            _wire.new_span_id(),
            parent,
            f"otel-run load {name}",
            start,
            time_ns(),
            {"otel_run.instrumentation": name},
            status=status,
        )
        process.writer.write(process.trace_id, _wire.request_json(process.resource_json, _wire.OTEL_RUN_SCOPE, [span]))
    except Exception as exc:
        _wire.debug(f"load span not written: {exc!r}")
