"""The OpenTelemetry SDK, set up for a traced process on first need.

:func:`ensure_provider` builds an SDK ``TracerProvider`` whose

* resource is the process resource the bootstrap already computed (no resource
  detectors run: they scan installed distributions, tens of milliseconds);
* id generator puts spans that have no parent into the run's trace, and the
  encoder hangs them under the process span, whichever thread they start on;
* span processor, :class:`OtlpJsonLinesProcessor`, appends spans as OTLP JSON
  lines to the store through the bootstrap's writer.

The standard ``OTEL_TRACES_SAMPLER`` and span-limit variables keep working: the
SDK reads them. If the program installed its own SDK provider first, our
processor is added to it instead of replacing it.
"""

from __future__ import annotations

import os
import sys
import threading
from time import monotonic

from otel_run import _env, _wire
from otel_run.bootstrap import _boot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from opentelemetry.sdk.trace import ReadableSpan

PROVIDER: Any = None
"""The provider spans go to once set up; None before."""

_loading = False


def is_loading() -> bool:
    return _loading


def ensure_provider() -> Any:
    """Set up the SDK once; returns the tracer provider (None when impossible)."""
    global PROVIDER, _loading
    if PROVIDER is not None or _loading:
        return PROVIDER
    process = _boot.PROCESS
    if process is None:
        return None
    _loading = True
    try:
        _import_sdk(process.environ)
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        run_trace_id = int(process.trace_id, 16)

        class RunTracerProvider(TracerProvider):  # type: ignore[misc]
            """The SDK provider, minus its fork handler's resource re-detection:
            the bootstrap gives a forked child its own process and resource, and
            the SDK's detection runs a thread pool inside the child, which can
            deadlock there (its lock was taken by the parent at fork time)."""

            def _handle_fork(self) -> None:
                self._tracers_lock = threading.Lock()

        class RunIdGenerator(RandomIdGenerator):  # type: ignore[misc]
            """Spans with no parent join the run's trace. Ids come from the
            bootstrap's own ``os.urandom`` (test harnesses patch ``random``)."""

            def generate_trace_id(self) -> int:
                return run_trace_id

            def generate_span_id(self) -> int:
                return int(_wire.new_span_id(), 16)

        processor: Any = OtlpJsonLinesProcessor(process)
        current = trace.get_tracer_provider()
        provider: Any
        if isinstance(current, trace.ProxyTracerProvider):
            provider = RunTracerProvider(resource=Resource(process.resource), id_generator=RunIdGenerator())
            processor.own_resource = provider.resource
            provider.add_span_processor(processor)
            trace.set_tracer_provider(provider)
        elif hasattr(current, "add_span_processor"):
            current.add_span_processor(processor)
            provider = current
        else:
            _wire.debug(f"unknown tracer provider {current!r}: its spans are not recorded")
            provider = current
        PROVIDER = provider
        _propagate_context_to_threads(provider)
        return provider
    finally:
        _loading = False


def _propagate_context_to_threads(provider: Any) -> None:
    """Spans started in a thread (or a ``ThreadPoolExecutor`` task) hang under
    the span that started it: the official threading instrumentation. Only
    processes with the SDK pay for it."""
    try:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        instrumentor = ThreadingInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
    except Exception as exc:
        _wire.debug(f"threading instrumentation not loaded: {exc!r}")


def add_otlp_exporter(provider: Any) -> None:
    """Also send this process's spans to the OTLP endpoint of the standard
    ``OTEL_EXPORTER_OTLP_*`` variables, through the official exporter."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_run.export._push import exporter_from_environ

    if hasattr(provider, "add_span_processor"):
        provider.add_span_processor(BatchSpanProcessor(exporter_from_environ(os.environ)))


def _import_sdk(environ: Any) -> None:
    try:
        import opentelemetry.sdk.trace
    except ImportError:
        # A Python outside otel-run's environment: borrow otel-run's libraries,
        # after the program's own (appended, never prepended).
        pylib = environ.get(_env.OTEL_RUN_PYLIB)
        if not pylib or pylib in sys.path:
            raise
        sys.path.append(pylib)
        import importlib

        importlib.invalidate_caches()
        import opentelemetry.sdk.trace  # noqa: F401


# ------------------------------------------------------------- processor


class OtlpJsonLinesProcessor:
    """A ``SpanProcessor`` that appends finished spans to the store.

    Spans are buffered and written in batches: when ``max_batch`` spans wait,
    after ``max_delay`` seconds (a daemon thread), before a fork, and at exit.
    A process killed with SIGKILL loses at most the spans of its last
    ``max_delay`` seconds (``bench/reliability_kill.py`` measures it).

    A batch whose spans hang under a span still open in this process also
    carries that span's *start record* (``otel_run.record: start``, once per
    span), so that when the process dies before the span ends its children are
    not orphans: readers show it as unfinished (see :mod:`otel_run.store._merge`).
    """

    def __init__(self, process: _boot.Process, max_batch: int = 512, max_delay: float = 0.1) -> None:
        from opentelemetry.sdk.trace import SpanProcessor  # noqa: F401 - duck-typed below

        self._process = process
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._buffer: list[ReadableSpan] = []
        self._open: dict[int, ReadableSpan] = {}
        """Spans started and not ended yet, by span id."""
        self._started: set[int] = set()
        """Open spans whose start record is written."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._armed = False
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._resources: dict[int, str] = {}
        self.own_resource: Any = None
        self._scopes: dict[tuple[str, str | None], str] = {}
        wanted = process.environ.get(_env.OTEL_RUN_PROFILE, "").lower()
        self._threads = "cpu" in wanted or "memory" in wanted
        _use_fast_json()
        from opentelemetry.trace import SpanKind

        _KINDS.update({kind: kind.value + 1 for kind in SpanKind})  # API enum -> OTLP enum
        process.exit_callbacks.append(self.flush)
        process.fork_callbacks.append(self.flush)
        os.register_at_fork(after_in_child=self._after_fork)

    # SpanProcessor interface ---------------------------------------------
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        context = span.context
        if context is not None:
            self._open[context.span_id] = span
        if self._threads:  # profiles are attributed to the innermost span open on the sampled thread
            span.set_attribute("thread.id", threading.get_ident())
            span.set_attribute("thread.name", threading.current_thread().name)

    def _on_ending(self, span: Any) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None:
            self._open.pop(context.span_id, None)
        buffer = self._buffer
        buffer.append(span)
        if len(buffer) >= self._max_batch:
            self.flush()
        elif not self._armed:
            self._arm()

    def shutdown(self) -> None:
        self.flush()
        with self._lock:
            self._stopped = True
            self._wake.notify_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flush()
        return True

    # batching --------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            spans, self._buffer = self._buffer, []
            self._armed = False
        if spans:
            try:
                self._write(spans)
            except Exception as exc:
                _wire.debug(f"spans not written: {exc!r}")

    def _arm(self) -> None:
        with self._lock:
            self._armed = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="otel-run-flush", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._armed and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                deadline = monotonic() + self._max_delay
                while not self._stopped and (remaining := deadline - monotonic()) > 0:
                    self._wake.wait(remaining)
            self.flush()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buffer = []
        self._open = {}
        self._started = set()
        self._armed = False
        self._thread = None

    # encoding --------------------------------------------------------------
    def _write(self, spans: list[ReadableSpan]) -> None:
        process = self._process
        process.ensure()
        # trace id -> resource json -> scope json -> encoded spans
        grouped: dict[str, dict[str, dict[str, list[str]]]] = {}
        hex_ids: dict[int, str] = {}
        last: tuple[Any, Any, list[str]] | None = None  # (resource, scope, spans list) of the previous span
        opened = self._open_parents(spans)
        for span in (*opened, *spans) if opened else spans:
            ctx = span.context
            if ctx is None:
                continue
            trace_id = hex_ids.get(ctx.trace_id)
            if trace_id is None:
                trace_id = hex_ids[ctx.trace_id] = "%032x" % ctx.trace_id
            resource, scope = span.resource, span.instrumentation_scope
            if last is not None and last[0] is resource and last[1] is scope and len(hex_ids) == 1:
                bucket = last[2]  # consecutive spans of one process and library: the common case
            else:
                by_resource = grouped.setdefault(trace_id, {})
                by_scope = by_resource.setdefault(self._resource_json(resource), {})
                bucket = by_scope.setdefault(self._scope_json(scope), [])
                last = (resource, scope, bucket)
            bucket.append(encode_span(span, trace_id, process, start_record=bool(opened) and span in opened))
        for trace_id, by_resource in grouped.items():
            # one join: the line can be hundreds of kilobytes, every "+" would copy it
            parts = ['{"resourceSpans":[']
            for r, (resource_json, by_scope) in enumerate(by_resource.items()):
                parts += [",{" if r else "{", '"resource":{"attributes":', resource_json, '},"scopeSpans":[']
                for n, (scope_json, encoded) in enumerate(by_scope.items()):
                    parts += [",{" if n else "{", '"scope":', scope_json, ',"spans":[', ",".join(encoded), "]}"]
                parts.append("]}")
            parts.append("]}")
            process.writer.write(trace_id, "".join(parts))

    def _open_parents(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        """The spans still open in this process that ``spans`` hang under (at
        any depth) and whose start record is not written yet."""
        opened = self._open
        if not opened:
            return []
        started = self._started
        extra: list[ReadableSpan] = []
        for span in spans:
            parent = span.parent
            while parent is not None and parent.span_id in opened and parent.span_id not in started:
                started.add(parent.span_id)
                ancestor = opened.get(parent.span_id)
                if ancestor is None:  # ended meanwhile: it is in a batch of its own
                    break
                extra.append(ancestor)
                parent = ancestor.parent
        if len(started) > _STARTED_KEPT:  # forget the ones that ended
            started.intersection_update(opened)
        return extra

    def _resource_json(self, resource: Any) -> str:
        if resource is self.own_resource:
            return self._process.resource_json  # live: the service may rename itself (otel_run.setup)
        key = id(resource)
        cached = self._resources.get(key)
        if cached is None:
            attrs = dict(resource.attributes) if resource is not None else {}
            if attrs == self._process.resource:
                cached = self._process.resource_json
            else:
                cached = _wire.attributes_json(attrs)
            self._resources[key] = cached
        return cached

    def _scope_json(self, scope: Any) -> str:
        key = (scope.name, scope.version) if scope is not None else ("", None)
        cached = self._scopes.get(key)
        if cached is None:
            cached = self._scopes[key] = _wire.scope_json(key[0] or "unknown", key[1])
        return cached


def encode_span(span: ReadableSpan, trace_id: str, process: _boot.Process, start_record: bool = False) -> str:
    """One SDK span as OTLP JSON (attributes redacted); ``start_record``: a
    span still open, as it is now, marked as its start record.

    Reads the ``ReadableSpan``'s fields directly when it has them: its public
    properties copy the attribute, event and link lists on every access, and
    this runs once per span (the public properties are the fallback).
    """
    fields = getattr(span, "__dict__", None)
    if fields is None or "_context" not in fields:
        fields = _public_fields(span)
    parent = fields["_parent"]
    if parent is not None:
        parent_id: str | None = "%016x" % parent.span_id
        if parent_id == process.fork_parent:
            parent_id = process.span_id  # started in a forked child under the span it inherited
    elif trace_id == process.trace_id:
        parent_id = process.span_id  # a parentless span in our trace hangs under the process
    else:
        parent_id = None
    start = fields["_start_time"] or 0
    end = fields["_end_time"] or start
    attributes = fields["_attributes"] or {}
    if start_record:
        end = start
        try:
            attributes = {**getattr(attributes, "_dict", attributes), _wire.RECORD_KEY: _wire.RECORD_START}
        except RuntimeError:  # the program's thread is setting one now
            attributes = {_wire.RECORD_KEY: _wire.RECORD_START}
    status = fields["_status"]
    raw_events = fields["_events"]
    events = [(e.name, e.timestamp, e.attributes or {}) for e in raw_events] if raw_events else ()
    encoded = _wire.span_json(
        trace_id,
        "%016x" % fields["_context"].span_id,
        parent_id,
        fields["_name"],
        start,
        end,
        attributes,
        kind=_KINDS.get(fields["_kind"]) or fields["_kind"].value + 1,
        events=events,
        status=(status.status_code.value, status.description or "") if status.status_code.value else _UNSET,
    )
    raw_links = fields["_links"]
    if raw_links:
        links = ",".join(
            '{"traceId":"%032x","spanId":"%016x","attributes":%s}'
            % (link.context.trace_id, link.context.span_id, _wire.attributes_json(link.attributes or {}))
            for link in raw_links
        )
        encoded = encoded[:-1] + ',"links":[' + links + "]}"
    return encoded


_UNSET = (_wire.STATUS_UNSET, "")
_STARTED_KEPT = 1024
_KINDS: dict[Any, int] = {}


def _public_fields(span: ReadableSpan) -> dict[str, Any]:
    return {
        "_context": span.context,
        "_parent": span.parent,
        "_name": span.name,
        "_kind": span.kind,
        "_start_time": span.start_time,
        "_end_time": span.end_time,
        "_attributes": span.attributes,
        "_events": span.events,
        "_links": span.links,
        "_status": span.status,
    }


def _use_fast_json() -> None:
    """Swap the bootstrap's pure-Python string escaper for the C one (json's
    accelerator), now that the SDK made the process pay for loading it."""
    try:
        from _json import encode_basestring

        _wire.json_str = encode_basestring  # type: ignore[assignment]
    except ImportError:
        pass
