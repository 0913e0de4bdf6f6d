"""Sending stored traces to a collector with the official OTLP exporters.

The spans are rebuilt as SDK ``ReadableSpan`` objects and handed to
``opentelemetry-exporter-otlp`` (HTTP/protobuf by default, gRPC when
``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc``), so every standard
``OTEL_EXPORTER_OTLP_*`` setting (headers, TLS, compression, timeout) applies
as the exporters define it. The send has its own deadline
(``OTEL_RUN_EXPORT_TIMEOUT``, default 5 s); failing to send never loses the run:
it stays in the store for ``otel-trace push``. Every attempt to send a stored
run, by ``otel-trace push`` or by otel-run's background deliverer
(:mod:`._deliver`), is one JSON line in the store's delivery record,
``export.jsonl``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from otel_run import _env
from otel_run._errors import OtelRunError
from otel_run.store import _layout
from otel_run.store._model import Span, Trace
from otel_run.store._store import Run, Store

DEFAULT_TIMEOUT = 5.0


class SendError(OtelRunError):
    """The collector was tried and did not take the spans (refused, unreachable,
    no answer before the deadline, an error status)."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where


EXPORT_BATCH = 512
"""Spans per export request, as the SDK's ``BatchSpanProcessor`` sends them
(``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``'s default): a long run's spans in one
request would exceed the body limit of a collector (``otel-trace serve``'s
4 MiB, the Collector's 20 MiB). A run is marked pushed only when every
request was taken; one retried after a failure sends its first requests again
(readers merge copies of a span by id)."""


def push_run(
    store: Store,
    ref: str | None,
    environ: Mapping[str, str],
    *,
    endpoint: str | None = None,
    via: str = "otel-trace push",
) -> str:
    """Send one stored run; returns a one-line report, raises OtelRunError."""
    return send_run(store, store.find_run(ref), environ, endpoint=endpoint, via=via)


def send_run(
    store: Store, run: Run, environ: Mapping[str, str], *, endpoint: str | None = None, via: str = "otel-trace push"
) -> str:
    """Send ``run``, mark it pushed and add the attempt to the delivery record
    (``via`` says who sent it); returns a one-line report, raises OtelRunError."""
    spans, where = send_runs(store, [run], environ, endpoint=endpoint, via=via)
    return f"sent {spans} spans to {where}"


def send_runs(
    store: Store, runs: list[Run], environ: Mapping[str, str], *, endpoint: str | None = None, via: str
) -> tuple[int, str]:
    """Send ``runs`` in one export (one request), mark each pushed and add one
    line per run to the delivery record; returns (spans sent, where). Raises
    OtelRunError (every run's line then says why); a run without spans is
    left out of the request, and fails alone."""
    started = time.monotonic()
    traces = [store.load_trace(run.trace_id) for run in runs]
    if len(runs) > 1:
        for run, trace in [(r, t) for r, t in zip(runs, traces, strict=True) if not t.spans]:
            _record_attempt(store, run, 0, None, via, started, f"trace {trace.trace_id} has no spans to send")
        runs, traces = [r for r, t in zip(runs, traces, strict=True) if t.spans], [t for t in traces if t.spans]
        if not runs:
            raise OtelRunError("no spans to send")
    try:
        where = push_traces(traces, environ, endpoint=endpoint)
    except OtelRunError as exc:
        tried = exc.where if isinstance(exc, SendError) else None
        for run, trace in zip(runs, traces, strict=True):
            _record_attempt(store, run, len(trace.spans), tried, via, started, str(exc))
        raise
    for run, trace in zip(runs, traces, strict=True):
        store.mark_pushed(run, where)
        _record_attempt(store, run, len(trace.spans), where, via, started, None)
    return sum(len(t.spans) for t in traces), where


def record_line(store: Store, fields: Mapping[str, Any]) -> None:
    """Append one line to the delivery record, ``<store>/export.jsonl`` (one
    ``write(2)`` with ``O_APPEND``). Raises OSError (FileNotFoundError when the
    store is gone: the record never re-creates it)."""
    import json

    from otel_run._redact import redact_text, remember_environment

    remember_environment(os.environ)  # a token from the environment quoted in an error
    now = time.time()
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        **{k: redact_text(v) if k in ("endpoint", "error") and isinstance(v, str) else v for k, v in fields.items()},
    }
    data = json.dumps(line, ensure_ascii=False).encode("utf-8", "backslashreplace")
    _layout.append_line(os.path.join(store.root, _layout.EXPORT_RECORD), data, dirs=False)


def _record_attempt(
    store: Store, run: Run, spans: int, where: str | None, via: str, started: float, error: str | None
) -> None:
    fields: dict[str, Any] = {
        "run_id": run.run_id,
        "trace_id": run.trace_id,
        "spans": spans,
        "endpoint": where,
        "ok": error is None,
        "seconds": round(time.monotonic() - started, 3),
        "via": via,
        "pid": os.getpid(),
    }
    if error is not None:
        fields["error"] = error
    try:
        record_line(store, fields)
    except OSError:
        pass  # the record is a convenience; the pushed/ marker is what counts


def has_endpoint(environ: Mapping[str, str], endpoint: str | None = None) -> bool:
    """Whether there is anywhere to send to (``--endpoint`` or the standard variables)."""
    return bool(_target(environ, endpoint))


def _target(environ: Mapping[str, str], endpoint: str | None) -> str | None:
    return (
        endpoint
        or environ.get(_env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        or environ.get(_env.OTEL_EXPORTER_OTLP_ENDPOINT)
        or None
    )


def push_trace(trace: Trace, environ: Mapping[str, str], *, endpoint: str | None = None) -> str:
    """Send a trace; returns where it went. Raises :class:`SendError` when the
    collector did not take it, OtelRunError when it could not be tried."""
    return push_traces([trace], environ, endpoint=endpoint)


def push_traces(traces: list[Trace], environ: Mapping[str, str], *, endpoint: str | None = None) -> str:
    """Send traces in one export call; returns where they went. Raises
    :class:`SendError` when the collector did not take them, OtelRunError when
    they could not be tried."""
    protocol = _protocol(environ)
    timeout = export_timeout(environ)
    target = _target(environ, endpoint)
    if not target:
        raise OtelRunError("no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT or pass --endpoint")
    for trace in traces:
        if not trace.spans:
            raise OtelRunError(f"trace {trace.trace_id} has no spans to send")
    exporter, where = _exporter(protocol, endpoint, target, timeout)
    where = _redacted(where, environ)  # as shown, recorded and marked: no credential of the URL
    spans = [to_readable_span(s) for trace in traces for s in trace.spans]
    from opentelemetry.sdk.trace.export import SpanExportResult

    errors = _CapturedErrors()
    result = SpanExportResult.SUCCESS
    with errors:
        try:
            for start in range(0, len(spans), EXPORT_BATCH):  # a request a collector takes (413 otherwise)
                result = exporter.export(spans[start : start + EXPORT_BATCH])
                if result is not SpanExportResult.SUCCESS:
                    break
        finally:
            exporter.shutdown()
    if result is not SpanExportResult.SUCCESS:
        detail = errors.last or "the collector did not accept the spans"
        raise SendError(where, _redacted(detail, environ))
    return where


def _redacted(text: str, environ: Mapping[str, str]) -> str:
    from otel_run._redact import redact_text, remember_environment

    remember_environment(environ)
    return redact_text(text)


def _protocol(environ: Mapping[str, str]) -> str:
    return (
        environ.get(_env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        or environ.get(_env.OTEL_EXPORTER_OTLP_PROTOCOL)
        or "http/protobuf"
    ).strip()


def export_timeout(environ: Mapping[str, str]) -> float:
    """``OTEL_RUN_EXPORT_TIMEOUT`` in seconds (default 5); raises OtelRunError when it is not a positive number."""
    raw = environ.get(_env.OTEL_RUN_EXPORT_TIMEOUT)
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise OtelRunError(f"{_env.OTEL_RUN_EXPORT_TIMEOUT}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise OtelRunError(f"{_env.OTEL_RUN_EXPORT_TIMEOUT}={raw!r} must be positive")
    return value


def exporter_from_environ(environ: Mapping[str, str]) -> Any:
    """The official OTLP span exporter for the protocol ``environ`` asks for
    (endpoint, headers and TLS as the exporter reads them from the environment)."""
    return _exporter_class(_protocol(environ))()


def _exporter_class(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            return GrpcExporter
        if protocol in ("http/protobuf", "http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            return HttpExporter
    except ImportError as exc:
        raise OtelRunError(f"the OTLP exporter for {protocol} is not installed ({exc.name})") from exc
    raise OtelRunError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (use http/protobuf or grpc)")


def _exporter(protocol: str, endpoint: str | None, target: str, timeout: float) -> tuple[Any, str]:
    exporter_class = _exporter_class(protocol)
    if protocol == "grpc":
        return exporter_class(endpoint=endpoint, timeout=timeout), f"{target} (OTLP/gRPC)"
    url = None
    if endpoint:
        url = endpoint.rstrip("/") + "/v1/traces" if endpoint.count("/") <= 2 else endpoint
    return exporter_class(endpoint=url, timeout=timeout), f"{url or target} (OTLP/HTTP)"


def to_readable_span(span: Span) -> Any:
    """Our span as an SDK ``ReadableSpan`` (what the exporters take)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

    def context(trace_id: str, span_id: str) -> SpanContext:
        return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(1))

    state = TraceState.from_header([span.trace_state]) if span.trace_state else None
    ctx = SpanContext(int(span.trace_id, 16), int(span.span_id, 16), False, TraceFlags(1), state)
    return ReadableSpan(
        name=span.name,
        context=ctx,
        parent=context(span.trace_id, span.parent_id) if span.parent_id else None,
        resource=_resource(Resource, span),
        attributes=_attrs(span.attributes),
        events=[Event(e.name, _attrs(e.attributes), e.time_ns) for e in span.events],
        links=[Link(context(link.trace_id, link.span_id), _attrs(link.attributes)) for link in span.links],
        kind=SpanKind(max(0, span.kind - 1)),
        status=Status(StatusCode(span.status_code), span.status_message or None)
        if span.status_code == 2
        else Status(StatusCode(span.status_code)),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=InstrumentationScope(span.scope_name or "unknown", span.scope_version),
    )


_resources: dict[str, Any] = {}


def _resource(resource_cls: Any, span: Span) -> Any:
    cached = _resources.get(span.resource.key)
    if cached is None:
        cached = _resources[span.resource.key] = resource_cls(_attrs(span.resource.attributes))
    return cached


def _attrs(attributes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, list):
            value = tuple(v for v in value if isinstance(v, (str, bool, int, float)))
        elif isinstance(value, dict) or value is None:
            value = str(value)
        out[key] = value
    return out


class _CapturedErrors(logging.Handler):
    """Keeps the exporters' log lines off the terminal; the last one becomes
    part of our one-line error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None
        self._logger = logging.getLogger("opentelemetry")
        self._saved: tuple[bool, int] = (True, logging.NOTSET)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().splitlines()[0] if record.getMessage() else ""
        self.last = message[:300]

    def __enter__(self) -> _CapturedErrors:
        self._saved = (self._logger.propagate, self._logger.level)
        self._logger.addHandler(self)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._saved[0]
