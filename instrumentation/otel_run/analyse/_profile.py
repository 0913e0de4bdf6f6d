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
from operator import itemgetter
from typing import Any

from otel_run._wire import RECORD_PROFILE, RECORD_REAP, RECORD_START, RECORD_WAITED
from otel_run.analyse._paths import DEEPER, ORPHANS, ROOT, SEP, Normalizer
from otel_run.store._merge import FormatError, decode_value, iter_batches
from otel_run.store._model import RECORD, RUN_ID, Trace
from otel_run.store._validate import Duplicates, canonical_hex, finite_number, link, same_span

BYTES_ATTRIBUTES = ("http.request.body.size", "http.response.body.size")
MAX_PATH_DEPTH = 64
"""Path segments a span path keeps: a span deeper than this is compared by its
name under its ancestor at this depth (``… > DEEPER > name``), so a chain
thousands of spans deep gives a few paths, not one path per level with keys
growing with depth (a size quadratic in the depth)."""
SKEW_TOLERANCE_NS = 1_000_000
"""A child may start before or end after its parent by this much before it counts as clock skew."""

_TIME_LIMIT = 2**64  # store._validate.time_ns takes times below this
_PARENT = itemgetter(3)  # a _Collector record's parent id

# indexes into a path's per-run statistics
TOTAL, SELF, COUNT, BYTES, CRITICAL = range(5)
BASE = 5
_RANK = {None: 3, RECORD_START: 2, RECORD_REAP: 1, RECORD_WAITED: 0, RECORD_PROFILE: -1}  # a profile adds values only


class RunProfile:
    """One run reduced to per-path numbers; small, so worker processes can send it back."""

    __slots__ = (
        "errors",
        "folded",
        "orphans",
        "paths",
        "root_name",
        "run",
        "skewed",
        "source",
        "spans",
        "wall_ns",
        "warnings",
    )

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
        self.folded = 0
        """Spans deeper than :data:`MAX_PATH_DEPTH`, compared by name under their ancestor at that depth."""
        self.root_name = ""
        self.warnings: list[str] = []
        """What was wrong in the run's tree (parent loops)."""


class SpanTable:
    """The spans of one trace, as parallel lists (index = span)."""

    __slots__ = (
        "ends",
        "errors",
        "ids",
        "is_run",
        "names",
        "parents",
        "services",
        "source",
        "starts",
        "trace_id",
        "values",
        "warnings",
    )

    def __init__(self, trace_id: str, source: str = "") -> None:
        self.trace_id = trace_id
        self.source = source
        """The file it was read from (what warnings name)."""
        self.warnings: list[str] = []
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


def tables_from_otlp(documents: Iterable[Any], wanted: Iterable[str], source: str = "") -> list[SpanTable]:
    """The tables of every trace in decoded OTLP JSON requests, in order of
    first appearance. The requests have been through
    :meth:`otel_run.store._validate.Checker.request` (ids are hex, times
    integers); raises :class:`FormatError` for data that is not OTLP JSON."""
    keys = frozenset(wanted)
    collect = _Collector(source)
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


def tables_from_bytes(data: bytes, wanted: Iterable[str], source: str = "") -> tuple[list[SpanTable], list[str]] | None:
    """Like :func:`tables_from_otlp` on a whole file's bytes, decoded with
    ``msgspec`` into just the fields a diff reads (3× faster than ``json``
    building every object). It takes only ids and times the validator
    (:mod:`otel_run.store._validate`) takes as they are — lowercase hex ids,
    times in range — and returns None for anything else, as when msgspec is
    not installed or the data is not plain OTLP JSON: the caller then takes
    the general path, where the validator says what is wrong and leaves it out
    (ids in capitals or base64, as Tempo writes them, are read there too).
    Warnings name ``source``."""
    try:
        from otel_run.analyse._otlp_msgspec import DECODER as decoder
        from otel_run.analyse._otlp_msgspec import Error, number
    except ImportError:
        return None
    warnings: list[str] = []
    try:
        requests = [decoder.decode(data)]
    except Error:
        lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            return None
        requests = []
        for at, (line_no, line) in enumerate(lines, 1):
            try:
                requests.append(decoder.decode(line))
            except (Error, RecursionError):
                if at == len(lines) and _undecodable(line):  # a writer killed mid-line: as the store reads it
                    warnings.append(f"{source}:{line_no}: incomplete last line skipped")
                    continue
                return None  # a damaged line, or one msgspec does not take (NaN): the general path decides
    except RecursionError:  # nested deeper than the interpreter's limit: the general path says where
        return None
    if any(r.resourceSpans is None and r.batches is None for r in requests):
        return None  # not OTLP JSON: the general path names what it looks like
    keys = frozenset(wanted)
    collect = _Collector(source)
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
                        # time_ns's rule (ids: canonical_hex, below, on all at once); anything
                        # else takes the general path, where the validator says what is wrong
                        start = span.startTimeUnixNano
                        if type(start) is str and start.isascii() and start.isdigit() and len(start) < 20:
                            start = int(start)
                        elif type(start) is not int or not 0 <= start < _TIME_LIMIT:
                            return None
                        end = span.endTimeUnixNano
                        if type(end) is str and end.isascii() and end.isdigit() and len(end) < 20:
                            end = int(end)
                        elif type(end) is not int or not 0 <= end < _TIME_LIMIT:
                            return None
                        marker = None
                        values: dict[str, float] | None = None
                        is_run = False
                        for kv in span.attributes:
                            key = kv.key
                            if key in keys:
                                value = number(kv.value)
                                if value is not None and value - value == 0:  # not NaN or infinite
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
                            start,
                            end,
                            error,
                            is_run,
                            values,
                            marker,
                        )
    except (Error, ValueError, TypeError, AttributeError):
        return None
    if not collect.canonical():
        return None  # ids that are not lowercase hex (wrong, or base64 as Tempo writes them): the general path
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
    out.warnings.extend(table.warnings)
    children, roots = _children(table.parents, _first_index(table.ids))
    if not _walk(out, table, children, roots, normalize, metrics, root_span_id, checked=False):
        # some spans are not under any root: a parent loop (a span its own parent included); cut it and walk again
        out = RunProfile(run or table.trace_id, source)
        out.spans = n
        out.warnings.extend(table.warnings)
        parent_of, _ = link(
            table.ids, table.parents, table.starts, table.source or f"trace {table.trace_id}", out.warnings
        )
        children, roots = _children(parent_of, None)
        _walk(out, table, children, roots, normalize, metrics, root_span_id, checked=True)
    return out


def _walk(
    out: RunProfile,
    table: SpanTable,
    children: list[list[int] | None],
    roots: list[int],
    normalize: Normalizer,
    metrics: Sequence[str],
    root_span_id: str | None,
    *,
    checked: bool,
) -> bool:
    """Fill ``out`` from the trees under ``roots``. Unless the tree was
    ``checked`` (loops cut by :func:`~otel_run.store._validate.link`), gives
    up, returning False, when a span is under no root or the run's root is not
    a root (either may be in a loop: walking it would not end)."""
    n = len(table.ids)
    starts, ends, names, services = table.starts, table.ends, table.names, table.services
    if not roots:
        return False
    root = _pick_root(table, roots, root_span_id)
    if not checked and root_span_id is not None and root not in roots:
        return False
    out.wall_ns = max(0, ends[root] - starts[root])
    out.root_name = names[root]
    out.errors = sum(table.errors)
    width = BASE + len(metrics)
    paths = out.paths
    values = table.values
    # (span, its path, its depth in the path, the path it folds under once deeper than MAX_PATH_DEPTH)
    stack: list[tuple[int, str, int, str]] = [(root, ROOT, 0, "")]
    for r in roots:
        if r != root:
            out.orphans += 1
            stack.append((r, f"{ORPHANS}{SEP}[{services[r]}] {normalize(names[r])}", 1, ""))
    folded = 0
    skewed = 0
    low_skew, high_skew = SKEW_TOLERANCE_NS, SKEW_TOLERANCE_NS
    known = normalize.cache  # the hot loop reads the normaliser's cache itself
    span_stats: list[list[float]] = [None] * n  # type: ignore[list-item]
    # stats indexes: 0 TOTAL, 1 SELF, 2 COUNT, 3 BYTES, 4 CRITICAL (literals: this loop runs per span)
    visited = 0
    while stack:
        i, key, level, base = stack.pop()
        visited += 1
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
        if level >= MAX_PATH_DEPTH:  # children are compared by name under the path at the limit
            if not base:
                base = f"{key}{SEP}{DEEPER}"
            prefix = base
            folded += len(kids)
        else:
            prefix = key
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
            c_key = f"{prefix}{SEP}{shown}" if c_service == service else f"{prefix}{SEP}[{c_service}] {shown}"
            stack.append((c, c_key, level + 1, base))
        stats[1] += duration - covered if duration > covered else 0
    out.skewed = skewed
    out.folded = folded
    if visited < n and not checked:
        return False
    for i, ns in _critical_path(root, starts, ends, children):
        span_stats[i][4] += ns
    return True


def _first_index(ids: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, span_id in enumerate(ids):
        index.setdefault(span_id, i)
    return index


def _children(
    parents: Sequence[str | int | None], index: dict[str, int] | None
) -> tuple[list[list[int] | None], list[int]]:
    """Each span's children and the roots, from parent ids (``index``: id to
    span) or parent indexes (``index`` None, -1 for a root). A span that is
    its own parent is neither a root nor a child: the walk misses it, and the
    caller cuts it out as a loop."""
    n = len(parents)
    children: list[list[int] | None] = [None] * n
    roots: list[int] = []
    for i, parent in enumerate(parents):
        if index is not None:
            p = index.get(parent, -1) if parent is not None else -1  # type: ignore[arg-type]
        else:
            p = parent  # type: ignore[assignment]
        if p < 0:
            roots.append(i)
        elif p != i:
            kids = children[p]
            if kids is None:
                children[p] = [i]
            else:
                kids.append(i)
    return children, roots


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

    def __init__(self, source: str = "") -> None:
        self.source = source
        # per trace: span id -> [rank, name, service, parent, start, end, error, is_run, values, started,
        #                        (start, parent) of the first complete record, ranks folded in…]
        self.traces: dict[str, dict[str, list[Any]]] = {}
        self.duplicates: dict[str, Duplicates] = {}
        """Per trace: which records are different spans sharing an id (kept apart)."""

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
            (start, parent_id) if marker is None else None,
        ]
        spans = self.traces.get(trace_id)
        if spans is None:
            spans = self.traces[trace_id] = {}
        seen = spans.get(span_id)
        if seen is None:
            spans[span_id] = record
            return
        if marker is None:
            first = seen[10]
            if first is None:
                seen[10] = (start, parent_id)
            elif not same_span(first[0], first[1], start, parent_id):  # another span with this id: kept apart
                duplicates = self.duplicates.get(trace_id)
                if duplicates is None:
                    duplicates = self.duplicates[trace_id] = Duplicates()
                duplicates.span_id(span_id, True, first[0], first[1])
                own = duplicates.span_id(span_id, True, start, parent_id)
                seen = spans.get(own)
                if seen is None:
                    spans[own] = record
                    return
        _fold(seen, record)

    def canonical(self) -> bool:
        """Whether every trace, span and parent id is lowercase hex (store._validate.canonical_hex)."""
        if not canonical_hex(self.traces.keys(), 16):
            return False
        for spans in self.traces.values():
            if not canonical_hex(spans.keys(), 8):
                return False
            parents = set(map(_PARENT, spans.values())) - spans.keys()  # the others are span ids: checked
            parents.discard(None)
            if not canonical_hex(parents, 8):
                return False
        return True

    def tables(self) -> list[SpanTable]:
        out = []
        for trace_id, spans in self.traces.items():
            table = _table(trace_id, spans, self.source)
            found = self.duplicates.get(trace_id)
            if found is not None and found.found:
                names = {span_id: r[1] for span_id, r in spans.items()}
                table.warnings.extend(found.warnings(self.source or f"trace {table.trace_id}", names))
            out.append(table)
        return out


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


def _table(trace_id: str, spans: dict[str, list[Any]], source: str) -> SpanTable:
    table = SpanTable(trace_id, source)
    items = list(spans.items())
    if any(len(r) > 11 or r[0] < 3 for _, r in items):  # fragments: fold as store._merge does
        items = [(i, r) for i, r in items if r[0] > 0 or any(r[11:])]  # a waitpid alone is dropped
        unfinished = [n for n, (_, r) in enumerate(items) if r[0] == 2 and 1 not in r[11:]]
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
    """Unfinished spans end where their last descendant ended, with an error
    (store._merge's rule), in one pass from the deepest spans up."""
    parent, depth = link(table.ids, table.parents, table.starts, "", [])  # loops are said by profile()
    latest = list(table.ends)
    for i in sorted(range(len(parent)), key=depth.__getitem__, reverse=True):
        p = parent[i]
        if p >= 0 and latest[p] < latest[i]:
            latest[p] = latest[i]
    for i in unfinished:
        table.ends[i] = max(table.ends[i], latest[i])
        table.errors[i] = True


def _pick_root(table: SpanTable, roots: list[int], root_span_id: str | None) -> int:
    if root_span_id is not None:
        try:
            return table.ids.index(root_span_id)
        except ValueError:
            pass
    runs = [i for i in roots if table.is_run[i]]
    candidates = runs or roots
    return min(candidates, key=lambda i: (table.starts[i], -table.ends[i]))


def _critical_path(
    root: int, starts: list[int], ends: list[int], children: list[list[int] | None]
) -> list[tuple[int, int]]:
    """``(span, ns on the critical path)``: Jaeger's algorithm, as in
    :func:`otel_run.analyse._tree.critical_path`, over table indexes, with a
    stack instead of recursion."""
    out: list[tuple[int, int]] = []
    # a frame: [span, the end still to account for, its children latest end first]
    stack: list[list[Any]] = [[root, ends[root], iter(_latest_first(children[root], ends))]]
    while stack:
        frame = stack[-1]
        i, last, kids = frame
        start = starts[i]
        for c in kids:
            c_start, c_end = starts[c], ends[c]
            if c_start >= last or c_end <= start:
                continue
            c_end = min(c_end, last)
            if last > c_end:
                out.append((i, last - c_end))
            grandchildren = children[c]
            if grandchildren is None:  # a leaf: its whole (clipped) time, without a frame
                if c_end > c_start:
                    out.append((c, c_end - c_start))
                last = c_start if c_start > start else start
                continue
            frame[1] = c_start if c_start > start else start
            stack.append([c, c_end, iter(_latest_first(grandchildren, ends))])
            break
        else:
            if last > start:
                out.append((i, last - start))
            stack.pop()
    return out


def _latest_first(kids: list[int] | None, ends: list[int]) -> list[int]:
    if not kids:
        return []
    return sorted(kids, key=ends.__getitem__, reverse=True) if len(kids) > 1 else kids


def _undecodable(line: bytes) -> bool:
    from otel_run.store._jsonl import loads

    try:
        loads(line)
    except ValueError:
        return True
    return False


def _is_number(value: Any) -> bool:
    return finite_number(value)
