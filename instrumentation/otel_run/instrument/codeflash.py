"""``CodeflashInstrumentor``: spans for the phases of a codeflash run and for
every call it makes to its backend.

Phases (one span each): function discovery, test discovery, ranking, each
function's optimization, code-context extraction, test generation, candidate
generation, the baseline, candidate evaluation (each candidate), every test run
(with its testing mode), review and explanation.

Backend calls: every ``/ai/*`` and ``/cfapi/*`` request is a span
(``codeflash.api.endpoint``, request and response body sizes, status) with the
JSON serialization of the request and the deserialization of the response as
child spans. The HTTP client span (requests instrumentation) and, when a TCP
connection is opened, a ``connect`` span sit under it: codeflash sends
``Connection: close`` on every AI call, so every call shows its own connect.

Version-tolerant: each wrap point is looked up by name, and one that moved in
another codeflash version is skipped with a debug log (``OTEL_RUN_DEBUG=1``).
Under otel-run nothing is imported early: each module is patched right after
codeflash imports it (so a function other modules import by name is wrapped
before they bind it); under ``opentelemetry-instrument`` they are imported at once.
Nothing here may change what codeflash does: every wrapper calls through, and
errors of its own are logged, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any, ClassVar

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.trace import Status, StatusCode

from otel_run import __version__, _wire
from otel_run.bootstrap import _imports

ENDPOINT = "codeflash.api.endpoint"
PHASES: tuple[tuple[str, str, str], ...] = (
    # (module, qualified name, span name)
    ("codeflash.optimization.optimizer", "Optimizer.run", "codeflash.optimize"),
    ("codeflash.optimization.optimizer", "Optimizer.get_optimizable_functions", "codeflash.discover_functions"),
    ("codeflash.optimization.optimizer", "Optimizer.discover_tests", "codeflash.discover_tests"),
    ("codeflash.optimization.optimizer", "Optimizer.rank_all_functions_globally", "codeflash.rank_functions"),
    ("codeflash.languages.function_optimizer", "FunctionOptimizer.optimize_function", "codeflash.optimize_function"),
    ("codeflash.languages.function_optimizer", "FunctionOptimizer.can_be_optimized", "codeflash.prepare_function"),
    (
        "codeflash.languages.python.function_optimizer",
        "PythonFunctionOptimizer.get_code_optimization_context",
        "codeflash.extract_context",
    ),
    (
        "codeflash.languages.function_optimizer",
        "FunctionOptimizer.generate_and_instrument_tests",
        "codeflash.generate_tests",
    ),
    (
        "codeflash.languages.function_optimizer",
        "FunctionOptimizer.generate_optimizations",
        "codeflash.generate_candidates",
    ),
    ("codeflash.languages.function_optimizer", "FunctionOptimizer.setup_and_establish_baseline", "codeflash.baseline"),
    (
        "codeflash.languages.function_optimizer",
        "FunctionOptimizer.determine_best_candidate",
        "codeflash.evaluate_candidates",
    ),
    (
        "codeflash.languages.function_optimizer",
        "FunctionOptimizer.process_single_candidate",
        "codeflash.evaluate_candidate",
    ),
    ("codeflash.languages.function_optimizer", "FunctionOptimizer.run_and_parse_tests", "codeflash.run_tests"),
    ("codeflash.languages.function_optimizer", "FunctionOptimizer.process_review", "codeflash.review"),
)
API_CALLS: tuple[tuple[str, str, str], ...] = (
    # (module, qualified name, service) — the single choke points of codeflash's HTTP calls
    ("codeflash.api.aiservice", "AiServiceClient.make_ai_service_request", "aiservice"),
    ("codeflash.api.cfapi", "make_cfapi_request", "cfapi"),
)


class CodeflashInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans for codeflash's phases and backend calls (see the module docstring)."""

    _undo: ClassVar[list[tuple[Any, str, Any]]] = []
    _active: ClassVar[bool] = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("codeflash >= 0.20",)

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        points: dict[str, list[tuple[str, Any, bool]]] = {}
        for module, qualname, name in PHASES:
            points.setdefault(module, []).append((qualname, _phase(tracer, name), False))
        for module, qualname, service in API_CALLS:
            points.setdefault(module, []).append((qualname, _api_call(tracer, service), True))
        type(self)._active = True
        _imports.ensure_finder()  # under stock opentelemetry-instrument too: importing codeflash early costs ~1 s
        for module_name, wanted in points.items():
            # Each module is patched right after codeflash imports it: nothing is imported
            # early, and a function other modules import by name is wrapped before they do.
            _imports.when_imported(module_name, self._patcher(tracer, wanted))

    def _uninstrument(self, **kwargs: Any) -> None:
        type(self)._active = False  # modules imported from now on stay as they are
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def _patcher(self, tracer: Any, wanted: list[tuple[str, Any, bool]]) -> Any:
        def patch(module: Any) -> None:
            if not type(self)._active:
                return
            for qualname, make, api in wanted:
                if self._wrap(module, qualname, make) and api:
                    self._time_json(tracer, module)

        return patch

    def _time_json(self, tracer: Any, module: Any) -> None:
        """Time the ``json.dumps`` the module serializes its requests with: a
        ``serialize request`` span under the API call span."""
        real = getattr(module, "json", None)
        if real is None or isinstance(real, _TimedJson):
            if real is None:
                _wire.debug(f"codeflash: {module.__name__} has no json module; request serialization not timed")
            return
        module.json = _TimedJson(tracer, real)
        self._undo.append((module, "json", real))

    def _wrap(self, module: Any, qualname: str, make: Any) -> bool:
        try:
            owner: Any = module
            *path, attr = qualname.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        except (AttributeError, KeyError) as exc:
            _wire.debug(f"codeflash: {module.__name__}.{qualname} not found ({exc!r}); not traced")
            return False
        wrapper = make(original)
        wrapper.__wrapped__ = original
        wrapper.__name__ = getattr(original, "__name__", attr)
        wrapper.__qualname__ = getattr(original, "__qualname__", qualname)
        wrapper.__doc__ = getattr(original, "__doc__", None)
        setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, original))
        return True


# ------------------------------------------------------------------ phases


def _phase(tracer: Any, name: str) -> Any:
    def make(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                span_cm = tracer.start_as_current_span(name, attributes=_phase_attributes(name, args, kwargs))
            except Exception as exc:
                _wire.debug(f"codeflash span {name} not started: {exc!r}")
                return original(*args, **kwargs)
            with span_cm:
                return original(*args, **kwargs)

        return wrapper

    return make


def _phase_attributes(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What identifies the work: the function being optimized, the test mode."""
    attrs: dict[str, Any] = {}
    try:
        this = args[0] if args else None
        function = getattr(this, "function_to_optimize", None)
        if function is not None:
            attrs["code.function.name"] = str(getattr(function, "qualified_name", "") or function.function_name)
            attrs["code.file.path"] = str(getattr(function, "file_path", ""))
        if name == "codeflash.run_tests":
            mode = kwargs.get("testing_type", args[1] if len(args) > 1 else None)
            if mode is not None:
                attrs["codeflash.testing_mode"] = str(getattr(mode, "name", mode)).lower()
            iteration = kwargs.get("optimization_iteration", args[4] if len(args) > 4 else None)
            if isinstance(iteration, int):
                attrs["codeflash.candidate_index"] = iteration
    except Exception as exc:
        _wire.debug(f"codeflash span attributes for {name}: {exc!r}")
    return attrs


# --------------------------------------------------------------- API calls


def _api_call(tracer: Any, service: str) -> Any:
    def make(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            endpoint = kwargs.get("endpoint", args[1] if service == "aiservice" and len(args) > 1 else None)
            if service == "cfapi" and endpoint is None and args:
                endpoint = args[0]
            method = str(kwargs.get("method", _positional_method(service, args)) or "POST").upper()
            path = f"/{'ai' if service == 'aiservice' else 'cfapi'}{endpoint}"
            try:
                span_cm = tracer.start_as_current_span(
                    f"{service} {method} {path}",
                    kind=trace.SpanKind.INTERNAL,
                    attributes={ENDPOINT: path, "codeflash.api.service": service, "http.request.method": method},
                )
            except Exception as exc:
                _wire.debug(f"codeflash API span not started: {exc!r}")
                return original(*args, **kwargs)
            with span_cm as span:
                response = original(*args, **kwargs)
                try:
                    _record_response(tracer, span, response)
                except Exception as exc:
                    _wire.debug(f"codeflash API span: {exc!r}")
                return response

        return wrapper

    return make


def _positional_method(service: str, args: tuple[Any, ...]) -> str | None:
    # AiServiceClient.make_ai_service_request(self, endpoint, method="POST", ...)
    # cfapi.make_cfapi_request(endpoint, method, ...)
    index = 2 if service == "aiservice" else 1
    return args[index] if len(args) > index and isinstance(args[index], str) else None


def _record_response(tracer: Any, span: Any, response: Any) -> None:
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
    content = getattr(response, "content", None)
    if isinstance(content, bytes):
        span.set_attribute("http.response.body.size", len(content))
    request = getattr(response, "request", None)
    header = getattr(request, "headers", {}).get("Connection") if request is not None else None
    if header:
        span.set_attribute("http.request.header.connection", [str(header)])
    original_json = getattr(response, "json", None)
    if callable(original_json):
        context = trace.set_span_in_context(span)

        def timed_json(**kwargs: Any) -> Any:
            with tracer.start_as_current_span("deserialize response", context=context) as child:
                child.set_attribute("otel_run.serialization.format", "json")
                return original_json(**kwargs)

        response.json = timed_json  # this response only: codeflash reads it with .json()


class _TimedJson:
    """Stands in for the ``json`` module inside one codeflash module."""

    def __init__(self, tracer: Any, real: Any) -> None:
        self._tracer = tracer
        self._real = real

    def dumps(self, obj: Any, *args: Any, **kwargs: Any) -> str:
        parent = trace.get_current_span()
        if not parent.is_recording():
            return self._real.dumps(obj, *args, **kwargs)  # type: ignore[no-any-return]
        start = time.time_ns()
        text: str = self._real.dumps(obj, *args, **kwargs)
        try:
            span = self._tracer.start_span("serialize request", start_time=start)
            span.set_attribute("otel_run.serialization.format", "json")
            span.set_attribute("http.request.body.size", len(text.encode("utf-8")))
            span.end()
            parent.set_attribute("http.request.body.size", len(text.encode("utf-8")))
        except Exception as exc:
            _wire.debug(f"serialize span: {exc!r}")
        return text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
