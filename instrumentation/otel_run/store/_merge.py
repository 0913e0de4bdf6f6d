"""Reading OTLP JSON and merging the fragments of one span.

A stored trace file holds OTLP JSON ``ExportTraceServiceRequest`` objects, one
per line. otel-run may write one span in several records, told apart by the
attribute ``otel_run.record``:

* ``start``: a process span as it began (written at start-up so a process killed
  with SIGKILL is not lost);
* ``reap``: a parent's view of a child it reaped (exit status, CPU time and peak
  memory from ``wait4``), which is the whole span for a non-Python child;
* ``waited``: a parent's ``os.waitpid`` of a child whose command it does not
  know: pid, exit status, resource usage and end time; alone, it is the whole
  span of a process that never wrote its own (a worker killed before it did);
* no marker: a complete span (an ``exec`` ends the image's span; when the
  ``exec`` fails, the process writes another at its real end, which wins).

:func:`merge` folds them into one span each: the process's own resource, name
and resource usage win, the kernel's exit status wins (its resource usage is
kept as the tree's), the span ends at the latest end seen. A span with only a ``start`` record is *unfinished*: it gets
the end of its last descendant and an error status.

The reader also accepts what other tools write: base64 ids (Tempo's JSON API),
``batches`` and ``instrumentationLibrarySpans`` (older OTLP), numbers given as
JSON numbers or strings.
"""

from __future__ import annotations

from otel_run._wire import (
    EVENT_SIGNAL_SENT,
    RECORD_PROFILE,
    RECORD_REAP,
    RECORD_START,
    RECORD_WAITED,
    SIGNAL_EXPECTED,
)
from otel_run.store._model import RECORD, UNFINISHED, Event, Link, Resource, Span
from otel_run.store._validate import CODES, KINDS

TYPE_CHECKING = False  # keep ``typing`` out of otel-run's start-up
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SIGNAL = "otel_run.process.signal"
_KERNEL_KEYS = ("process.exit.code", "otel_run.process.signal")
"""What the reaper's view wins: how the process ended. Its resource usage is
the tree's (``otel_run.process.cpu.tree.*``) and never replaces the process's own."""


class FormatError(ValueError):
    """The data is not OTLP JSON; the message says what is wrong."""


def parse_request(obj: Any) -> Iterator[Span]:
    """The spans (possibly fragments) of one decoded ``ExportTraceServiceRequest``."""
    resources: dict[str, Resource] = {}
    for batch, scopes in iter_batches(obj):
        res_obj = batch.get("resource") or {}
        resource = Resource(decode_attributes(res_obj.get("attributes")))
        resource = resources.setdefault(resource.key, resource)
        for scope_spans, spans in scopes:
            scope = scope_spans.get("scope", scope_spans.get("instrumentationLibrary")) or {}
            scope_name = str(scope.get("name", ""))
            scope_version = scope.get("version")
            for raw in spans:
                yield _span(raw, resource, scope_name, scope_version)


def iter_batches(obj: Any) -> Iterator[tuple[dict[str, Any], Iterator[tuple[dict[str, Any], list[Any]]]]]:
    """Each ``resourceSpans`` entry of a decoded request with its
    ``(scopeSpans entry, spans)``; raises :class:`FormatError` naming what is
    not OTLP JSON (and what it looks like instead)."""
    if not isinstance(obj, dict):
        raise FormatError(f"not OTLP JSON: expected an object with 'resourceSpans', got a {type(obj).__name__}")
    batches = obj.get("resourceSpans", obj.get("batches"))
    if batches is None:
        if "data" in obj or "traceEvents" in obj or "spans" in obj:
            raise FormatError("not OTLP JSON (looks like Jaeger, Zipkin or Chrome trace JSON): no 'resourceSpans'")
        raise FormatError("not OTLP JSON: no 'resourceSpans'")
    if not isinstance(batches, list):
        raise FormatError("'resourceSpans' is not a list")
    for batch in batches:
        if not isinstance(batch, dict):
            raise FormatError("a 'resourceSpans' entry is not an object")
        scopes = batch.get("scopeSpans", batch.get("instrumentationLibrarySpans")) or []
        if not isinstance(scopes, list):
            raise FormatError("'scopeSpans' is not a list")
        yield batch, _scopes(scopes)


def _scopes(scopes: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    for scope_spans in scopes:
        spans = scope_spans.get("spans") or [] if isinstance(scope_spans, dict) else None
        if not isinstance(spans, list):
            raise FormatError("'spans' is not a list")
        yield scope_spans, spans


def _span(raw: Any, resource: Resource, scope_name: str, scope_version: str | None) -> Span:
    if not isinstance(raw, dict):
        raise FormatError("a span is not an object")
    try:
        trace_id = decode_id(raw["traceId"], 16)
        span_id = decode_id(raw["spanId"], 8)
    except KeyError as exc:
        raise FormatError(f"a span has no {exc.args[0]}") from exc
    parent = raw.get("parentSpanId")
    parent_id = decode_id(parent, 8) if parent else None
    status = raw.get("status") or {}
    code = status.get("code", 0)
    if isinstance(code, str):  # enum names in some encoders
        code = CODES.get(code, 0)
    kind = raw.get("kind", 1)
    if isinstance(kind, str):
        kind = KINDS.get(kind, 1)
    try:
        start = int(raw.get("startTimeUnixNano", 0))
        end = int(raw.get("endTimeUnixNano", 0))
    except (TypeError, ValueError) as exc:
        raise FormatError(f"span {span_id}: bad timestamp") from exc
    return Span(
        trace_id,
        span_id,
        parent_id,
        str(raw.get("name", "")),
        kind=int(kind),
        start_ns=start,
        end_ns=end,
        attributes=decode_attributes(raw.get("attributes")),
        events=[
            Event(str(e.get("name", "")), int(e.get("timeUnixNano", 0)), decode_attributes(e.get("attributes")))
            for e in raw.get("events") or []
        ],
        links=[
            Link(
                decode_id(link["traceId"], 16), decode_id(link["spanId"], 8), decode_attributes(link.get("attributes"))
            )
            for link in raw.get("links") or []
            if "traceId" in link and "spanId" in link
        ],
        status_code=int(code),
        status_message=str(status.get("message", "")),
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        trace_state=str(raw.get("traceState", "")),
    )


def decode_id(value: Any, nbytes: int) -> str:
    """A trace or span id as lowercase hex (accepts hex and base64)."""
    if not isinstance(value, str):
        raise FormatError(f"id {value!r} is not a string")
    if len(value) == nbytes * 2:
        try:
            int(value, 16)
            return value.lower()
        except ValueError:
            pass
    import base64
    import binascii

    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"id {value!r} is neither hex nor base64") from exc
    if len(raw) != nbytes:
        raise FormatError(f"id {value!r} has {len(raw)} bytes, expected {nbytes}")
    return raw.hex()


def decode_attributes(items: Any) -> dict[str, Any]:
    if not items:
        return {}
    if not isinstance(items, list):
        raise FormatError("'attributes' is not a list")
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and "key" in item:
            out[str(item["key"])] = decode_value(item.get("value") or {})
    return out


def decode_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [decode_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return decode_attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


# ------------------------------------------------------------------ merging


def merge(records: list[Span]) -> list[Span]:
    """One span per span id; see the module docstring for the rules."""
    groups: dict[str, list[Span]] = {}
    for record in records:
        groups.setdefault(record.span_id, []).append(record)
    spans = [_merge_group(group) if len(group) > 1 else _single(group[0]) for group in groups.values()]
    _close_unfinished(spans)
    _ended_as_asked(spans)
    return spans


def _ended_as_asked(spans: list[Span]) -> None:
    """A process killed by a signal that a process of the trace sent it (a
    pool's ``terminate()`` from the main process, a forkserver reaping the
    worker) ended as the program asked: no error."""
    sent = {
        (e.attributes.get("process.pid"), e.attributes.get(SIGNAL))
        for s in spans
        for e in s.events
        if e.name == EVENT_SIGNAL_SENT
    }
    if not sent:
        return
    for span in spans:
        attrs = span.attributes
        if span.status_code == 2 and SIGNAL in attrs and (attrs.get("process.pid"), attrs[SIGNAL]) in sent:
            span.status_code, span.status_message = 0, ""
            attrs[SIGNAL_EXPECTED] = True


def _single(span: Span) -> Span:
    marker = span.attributes.pop(RECORD, None)
    if marker == RECORD_START:
        span.attributes[UNFINISHED] = True
    return span


def _merge_group(group: list[Span]) -> Span:
    complete = [s for s in group if s.attributes.get(RECORD) is None]
    if len(complete) > 1:  # an exec that failed wrote an end the process outlived: the last end is the end
        latest = max(complete, key=lambda s: s.end_ns)
        group = [s for s in group if s is latest or s not in complete]
        complete = [latest]
    # the process's own start record before its parent's view of the spawn
    starts = sorted((s for s in group if s.attributes.get(RECORD) == RECORD_START), key=_written_by_itself)
    waited = [s for s in group if s.attributes.get(RECORD) == RECORD_WAITED]
    reaps = [s for s in group if s.attributes.get(RECORD) == RECORD_REAP] or waited
    group = [s for s in group if s not in waited or s in reaps]
    own = complete or starts
    if complete:
        base = max(complete, key=lambda s: s.end_ns)
    elif starts:
        base = starts[0]
    else:
        base = reaps[-1]
    merged = Span(
        base.trace_id,
        base.span_id,
        base.parent_id,
        base.name,
        kind=base.kind,
        start_ns=min(s.start_ns for s in group),
        end_ns=max(s.end_ns for s in group),
        attributes={},
        events=[],
        links=list(base.links),
        status_code=base.status_code,
        status_message=base.status_message,
        resource=base.resource,
        scope_name=base.scope_name,
        scope_version=base.scope_version,
        trace_state=base.trace_state,
    )
    profiled = [s for s in group if s.attributes.get(RECORD) == RECORD_PROFILE]
    # attributes: reap view, then the process's own, then the profile's summary, then the kernel's numbers
    for source in (*reaps, *reversed(starts), *sorted(complete, key=lambda s: s.end_ns), *profiled):
        merged.attributes.update(source.attributes)
    for reap in reaps:
        for key in _KERNEL_KEYS:
            if key in reap.attributes:
                merged.attributes[key] = reap.attributes[key]
    merged.attributes.pop(RECORD, None)
    seen: set[tuple[str, int]] = set()
    for source in group:
        for event in source.events:
            if (event.name, event.time_ns) not in seen:
                seen.add((event.name, event.time_ns))
                merged.events.append(event)
    merged.events.sort(key=lambda e: e.time_ns)
    if reaps:
        reap = reaps[-1]
        if reap.status_code == 2 or base.status_code != 2:
            merged.status_code, merged.status_message = reap.status_code, reap.status_message
        if reap.parent_id and not merged.parent_id:
            merged.parent_id = reap.parent_id
    elif not complete and own:
        merged.attributes[UNFINISHED] = True
    return merged


def _written_by_itself(span: Span) -> bool:
    """False for a process's own start record (sorts first), True for its
    parent's view of the spawn."""
    return not any(e.name == "python.started" for e in span.events)


def _close_unfinished(spans: list[Span]) -> None:
    """Unfinished spans end where their last descendant ended, with an error."""
    unfinished = [s for s in spans if s.attributes.get(UNFINISHED)]
    if not unfinished:
        return
    by_id = {s.span_id: s for s in spans}
    latest: dict[str, int] = {}
    for span in spans:
        parent_id = span.parent_id
        end = span.end_ns
        hops = 0
        while parent_id and hops < 1000:
            if latest.get(parent_id, 0) < end:
                latest[parent_id] = end
            parent = by_id.get(parent_id)
            parent_id = parent.parent_id if parent is not None else None
            hops += 1
    for span in unfinished:
        span.end_ns = max(span.end_ns, latest.get(span.span_id, 0))
        span.status_code = 2
        span.status_message = "unfinished: no end was recorded (the process was killed or is still running)"
