"""One run reduced to per-path numbers: the input of span-diff.

:func:`profile` turns a :class:`SpanTable` — the few fields a diff needs, as
parallel lists — into a :class:`RunProfile`: for every span path
(:mod:`otel_run.analyse._paths`), total time, self time, span count, bytes on
the wire, time on the run's critical path, and any numeric attribute asked for.

Tables come from merged traces (:func:`table_from_trace`) or straight from
decoded OTLP JSON (:func:`tables_from_otlp`). The second is span-diff's hot
path: it decodes only the attributes asked for, keeps ids as they are written
(hex or base64: they only need to match within a file), and folds otel-run's
span fragments itself (:mod:`otel_run.store._merge` has the rules), about 5×
faster than building full :class:`~otel_run.store._model.Span` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from otel_run._wire import RECORD_REAP, RECORD_START, RECORD_WAITED
from otel_run.analyse._paths import ORPHANS, ROOT, SEP, Normalizer
from otel_run.store._merge import FormatError, decode_id, decode_value, iter_batches
from otel_run.store._model import RECORD, RUN_ID, Trace

BYTES_ATTRIBUTES = ("http.request.body.size", "http.response.body.size")
SKEW_TOLERANCE_NS = 1_000_000
"""A child may start before or end after its parent by this much before it counts as clock skew."""

# indexes into a path's per-run statistics
TOTAL, SELF, COUNT, BYTES, CRITICAL = range(5)
BASE = 5
_RANK = {None: 3, RECORD_START: 2, RECORD_REAP: 1, RECORD_WAITED: 0}


class RunProfile:
    """One run reduced to per-path numbers; small, so worker processes can send it back."""

    __slots__ = ("errors", "orphans", "paths", "root_name", "run", "skewed", "source", "spans", "wall_ns")

    def __init__(self, run: str, source: str) -> None:
        self.run = run
        """The run's id (run id, or trace id for traces read from files)."""
        self.source = source
        self.paths: dict[str, list[float]] = {}
        self.wall_ns = 0
        self.spans = 0
        self.errors = 0
        self.orphans = 0
        self.skewed = 0
        self.root_name = ""


class SpanTable:
    """The spans of one trace, as parallel lists (index = span)."""

    __slots__ = ("ends", "errors", "ids", "is_run", "names", "parents", "services", "starts", "trace_id", "values")

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.ids: list[str] = []
        self.parents: list[str | None] = []
        self.names: list[str] = []
        self.services: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.errors: list[bool] = []
        self.is_run: list[bool] = []
        self.values: list[dict[str, float] | None] = []
        """Per span: the wanted numeric attributes it has (None: none)."""


# ------------------------------------------------------------------ tables


def table_from_trace(trace: Trace, wanted: Iterable[str]) -> SpanTable:
    """The table of an already merged trace."""
    keys = tuple(wanted)
    spans = trace.spans
    table = SpanTable(trace.trace_id)
    table.ids = [s.span_id for s in spans]
    table.parents = [s.parent_id for s in spans]
    table.names = [s.name for s in spans]
    table.services = [s.service for s in spans]
    table.starts = [s.start_ns for s in spans]
    table.ends = [s.end_ns for s in spans]
    table.errors = [s.status_code == 2 for s in spans]
    table.is_run = [s.is_run for s in spans]
    table.values = [{k: s.attributes[k] for k in keys if _is_number(s.attributes.get(k))} or None for s in spans]
    return table


def tables_from_otlp(documents: Iterable[Any], wanted: Iterable[str]) -> list[SpanTable]:
    """The tables of every trace in decoded OTLP JSON requests, in order of
    first appearance; raises :class:`FormatError` for data that is not OTLP JSON."""
    keys = frozenset(wanted)
    collect = _Collector()
    for obj in documents:
        for service, raw in _raw_spans(obj):
            try:
                trace_id = raw["traceId"]
                span_id = raw["spanId"]
            except KeyError as exc:
                raise FormatError(f"a span has no {exc.args[0]}") from None
            except TypeError:
                raise FormatError("a span is not an object") from None
            if not isinstance(trace_id, str) or not isinstance(span_id, str):
                raise FormatError(f"span id {span_id!r} or trace id {trace_id!r} is not a string")
            marker = None
            values: dict[str, float] | None = None
            is_run = False
            attrs = raw.get("attributes")
            if attrs:
                for item in attrs:
                    key = item.get("key")
                    if key in keys:
                        value = decode_value(item.get("value") or {})
                        if _is_number(value):
                            if values is None:
                                values = {}
                            values[key] = value
                    elif key == RECORD:
                        marker = (item.get("value") or {}).get("stringValue")
                    elif key == RUN_ID:
                        is_run = True
            try:
                start = int(raw.get("startTimeUnixNano", 0))
                end = int(raw.get("endTimeUnixNano", 0))
            except (TypeError, ValueError):
                raise FormatError(f"span {span_id}: bad timestamp") from None
            status = raw.get("status")
            error = bool(status) and status.get("code") in (2, "STATUS_CODE_ERROR")
            name = str(raw.get("name", ""))
            collect(
                trace_id,
                span_id,
                raw.get("parentSpanId") or None,
                name,
                service,
                start,
                end,
                error,
                is_run,
                values,
                marker,
            )
    return collect.tables()


def tables_from_bytes(data: bytes, wanted: Iterable[str]) -> tuple[list[SpanTable], list[str]] | None:
    """Like :func:`tables_from_otlp` on a whole file's bytes, decoded with
    ``msgspec`` into just the fields a diff reads (3× faster than ``json``
    building every object). None when msgspec is not installed or the data is
    not plain OTLP JSON: the caller then takes the general path, which also
    gives the precise error message."""
    try:
        from otel_run.analyse._otlp_msgspec import DECODER as decoder
        from otel_run.analyse._otlp_msgspec import Error, number
    except ImportError:
        return None
    warnings: list[str] = []
    try:
        requests = [decoder.decode(data)]
    except Error:
        lines = [line for line in data.splitlines() if line.strip()]
        if len(lines) < 2:
            return None
        requests = []
        for line_no, line in enumerate(lines, 1):
            try:
                requests.append(decoder.decode(line))
            except Error:
                if line_no == len(lines):
                    warnings.append("incomplete last line skipped")
                    continue
                return None
    if any(r.resourceSpans is None and r.batches is None for r in requests):
        return None  # not OTLP JSON: the general path names what it looks like
    keys = frozenset(wanted)
    collect = _Collector()
    try:
        for request in requests:
            for batch in request.resourceSpans or request.batches or ():
                service = "unknown_service"
                if batch.resource is not None:
                    for kv in batch.resource.attributes:
                        if kv.key == "service.name" and kv.value is not None:
                            service = str(kv.value.stringValue)
                            break
                for scope in batch.scopeSpans or batch.instrumentationLibrarySpans or ():
                    for span in scope.spans:
                        marker = None
                        values: dict[str, float] | None = None
                        is_run = False
                        for kv in span.attributes:
                            key = kv.key
                            if key in keys:
                                value = number(kv.value)
                                if value is not None:
                                    if values is None:
                                        values = {}
                                    values[key] = value
                            elif key == RECORD:
                                marker = kv.value.stringValue if kv.value is not None else None
                            elif key == RUN_ID:
                                is_run = True
                        status = span.status
                        error = status is not None and status.code in (2, "STATUS_CODE_ERROR")
                        collect(
                            span.traceId,
                            span.spanId,
                            span.parentSpanId or None,
                            span.name,
                            service,
                            int(span.startTimeUnixNano),
                            int(span.endTimeUnixNano),
                            error,
                            is_run,
                            values,
                            marker,
                        )
    except (Error, ValueError, TypeError, AttributeError):
        return None
    return collect.tables(), warnings


# ----------------------------------------------------------------- profile


def profile(
    table: SpanTable,
    normalize: Normalizer,
    metrics: Sequence[str] = (),
    *,
    run: str | None = None,
    source: str = "",
    root_span_id: str | None = None,
) -> RunProfile:
    """Reduce one trace to per-path numbers. The run's root is ``root_span_id``
    if given, else otel-run's run span, else the earliest, longest root; other
    parentless trees are counted as orphans and compared under ``(orphan)``."""
    out = RunProfile(run or table.trace_id, source)
    n = len(table.ids)
    out.spans = n
    if n == 0:
        return out
    starts, ends, names, services = table.starts, table.ends, table.names, table.services
    index = {span_id: i for i, span_id in enumerate(table.ids)}
    children: list[list[int] | None] = [None] * n
    roots: list[int] = []
    for i, parent_id in enumerate(table.parents):
        p = index.get(parent_id) if parent_id is not None else None
        if p is None or p == i:
            roots.append(i)
        else:
            kids = children[p]
            if kids is None:
                children[p] = [i]
            else:
                kids.append(i)
    root = _pick_root(table, roots, index, root_span_id)
    out.wall_ns = max(0, ends[root] - starts[root])
    out.root_name = names[root]
    out.errors = sum(table.errors)
    width = BASE + len(metrics)
    paths = out.paths
    values = table.values
    stack: list[tuple[int, str]] = [(root, ROOT)]
    for r in roots:
        if r != root:
            out.orphans += 1
            stack.append((r, f"{ORPHANS}{SEP}[{services[r]}] {normalize(names[r])}"))
    skewed = 0
    low_skew, high_skew = SKEW_TOLERANCE_NS, SKEW_TOLERANCE_NS
    known = normalize.cache  # the hot loop reads the normaliser's cache itself
    span_stats: list[list[float]] = [None] * n  # type: ignore[list-item]
    # stats indexes: 0 TOTAL, 1 SELF, 2 COUNT, 3 BYTES, 4 CRITICAL (literals: this loop runs per span)
    while stack:
        i, key = stack.pop()
        stats = paths.get(key)
        if stats is None:
            stats = paths[key] = [0.0] * width
        span_stats[i] = stats
        start = starts[i]
        end = ends[i]
        duration = end - start if end > start else 0
        stats[0] += duration
        stats[2] += 1
        found = values[i]
        if found is not None:
            for name in BYTES_ATTRIBUTES:
                if name in found:
                    stats[3] += found[name]
            for m, name in enumerate(metrics, BASE):
                if name in found:
                    stats[m] += found[name]
        kids = children[i]
        if kids is None:
            stats[1] += duration
            continue
        if len(kids) > 1:
            kids.sort(key=starts.__getitem__)
        service = services[i]
        covered = 0
        cursor = start
        for c in kids:
            c_start = starts[c]
            c_end = ends[c]
            if c_start < start - low_skew or c_end > end + high_skew:
                skewed += 1
            lo = c_start if c_start > cursor else cursor
            hi = c_end if c_end < end else end
            if hi > lo:
                covered += hi - lo
                cursor = hi
            raw = names[c]
            shown = known.get(raw)
            if shown is None:
                shown = normalize(raw)
            c_service = services[c]
            stack.append((c, f"{key}{SEP}{shown}" if c_service == service else f"{key}{SEP}[{c_service}] {shown}"))
        stats[1] += duration - covered if duration > covered else 0
    out.skewed = skewed
    for i, ns in _critical_path(root, starts, ends, children):
        span_stats[i][4] += ns
    return out


# ------------------------------------------------------------------ private


def _raw_spans(obj: Any) -> Iterable[tuple[str, Any]]:
    for batch, scopes in iter_batches(obj):
        service = "unknown_service"
        for item in (batch.get("resource") or {}).get("attributes") or ():
            if item.get("key") == "service.name":
                service = str(decode_value(item.get("value") or {}))
                break
        for _scope, spans in scopes:
            for raw in spans:
                yield service, raw


class _Collector:
    """Spans by trace and span id, otel-run's fragments folded as they come."""

    def __init__(self) -> None:
        # per trace: span id -> [rank, name, service, parent, start, end, error, is_run, values, started, ranks…]
        self.traces: dict[str, dict[str, list[Any]]] = {}

    def __call__(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        service: str,
        start: int,
        end: int,
        error: bool,
        is_run: bool,
        values: dict[str, float] | None,
        marker: Any,
    ) -> None:
        record = [
            _RANK.get(marker, 3),
            name,
            service,
            parent_id,
            start,
            end,
            error,
            is_run,
            values,
            marker == RECORD_START,
        ]
        spans = self.traces.get(trace_id)
        if spans is None:
            spans = self.traces[trace_id] = {}
        seen = spans.get(span_id)
        if seen is None:
            spans[span_id] = record
        else:
            _fold(seen, record)

    def tables(self) -> list[SpanTable]:
        return [_table(trace_id, spans) for trace_id, spans in self.traces.items()]


def _fold(seen: list[Any], record: list[Any]) -> None:
    """Fold a fragment into the span seen so far (rules of store._merge.merge)."""
    if record[0] > seen[0] or (record[0] == seen[0] == 3 and record[5] > seen[5]):
        seen[0], seen[1], seen[2], seen[6], seen[7] = record[0], record[1], record[2], record[6], record[7]
        seen[9] = record[9]
        if record[3] is not None:
            seen[3] = record[3]
    elif seen[3] is None:
        seen[3] = record[3]
    if record[0] == 1:
        seen[6] = seen[6] or record[6]  # the kernel's view of a failure wins
    if record[4] and (not seen[4] or record[4] < seen[4]):
        seen[4] = record[4]
    seen[5] = max(seen[5], record[5])
    if record[8]:
        seen[8] = {**(seen[8] or {}), **record[8]}
    seen.append(record[0])  # remember every rank seen


def _table(trace_id: str, spans: dict[str, list[Any]]) -> SpanTable:
    try:
        shown_id = decode_id(trace_id, 16)
    except FormatError:
        shown_id = trace_id
    table = SpanTable(shown_id)
    items = list(spans.items())
    if any(len(r) > 10 or r[0] < 3 for _, r in items):  # fragments: fold as store._merge does
        items = [(i, r) for i, r in items if r[0] > 0 or any(r[10:])]  # a waitpid alone is dropped
        unfinished = [n for n, (_, r) in enumerate(items) if r[0] == 2 and 1 not in r[10:]]
    else:
        unfinished = []
    records = [r for _, r in items]
    table.ids = [i for i, _ in items]
    table.names = [r[1] for r in records]
    table.services = [r[2] for r in records]
    table.parents = [r[3] for r in records]
    table.starts = [r[4] for r in records]
    table.ends = [r[5] for r in records]
    table.errors = [r[6] for r in records]
    table.is_run = [r[7] for r in records]
    table.values = [r[8] for r in records]
    if unfinished:
        _close_unfinished(table, unfinished)
    return table


def _close_unfinished(table: SpanTable, unfinished: list[int]) -> None:
    index = {span_id: i for i, span_id in enumerate(table.ids)}
    latest: dict[int, int] = {}
    for i, end in enumerate(table.ends):
        parent = table.parents[i]
        hops = 0
        while parent is not None and hops < 1000:
            p = index.get(parent)
            if p is None:
                break
            if latest.get(p, 0) < end:
                latest[p] = end
            parent = table.parents[p]
            hops += 1
    for i in unfinished:
        table.ends[i] = max(table.ends[i], latest.get(i, 0))
        table.errors[i] = True


def _pick_root(table: SpanTable, roots: list[int], index: dict[str, int], root_span_id: str | None) -> int:
    if root_span_id is not None and root_span_id in index:
        return index[root_span_id]
    runs = [i for i in roots if table.is_run[i]]
    candidates = runs or roots
    return min(candidates, key=lambda i: (table.starts[i], -table.ends[i]))


def _critical_path(
    root: int, starts: list[int], ends: list[int], children: list[list[int] | None]
) -> list[tuple[int, int]]:
    """``(span, ns on the critical path)``: Jaeger's algorithm, as in
    :func:`otel_run.analyse._tree.critical_path`, over table indexes."""
    out: list[tuple[int, int]] = []

    def walk(i: int, bound: int, depth: int) -> None:
        start = starts[i]
        last = ends[i] if ends[i] < bound else bound
        kids = children[i]
        if kids is not None and depth < 500:
            for c in sorted(kids, key=ends.__getitem__, reverse=True):
                c_start, c_end = starts[c], ends[c]
                if c_start >= last or c_end <= start:
                    continue
                c_end = min(c_end, last)
                if last > c_end:
                    out.append((i, last - c_end))
                walk(c, c_end, depth + 1)
                last = c_start if c_start > start else start
        if last > start:
            out.append((i, last - start))

    walk(root, ends[root], 0)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
