"""What a reader checks in the data it decoded: one validator for otel-trace
and span-diff.

Data that decodes as JSON can still be hostile: ids that are not ids, values
of the wrong type, numbers no clock can hold, span trees that loop, two spans
with one id, chains 100,000 deep. Every reader goes through this module, so
they agree on what is valid, and none of them crashes, hangs or silently
changes what it shows:

* :class:`Checker` cleans one file's decoded OTLP JSON requests in place
  (:meth:`Checker.request`): a span whose trace id, span id or times are not
  valid is left out; a field of the wrong type (a parent id, kind, status,
  name, trace state, an attribute, event or link) is left out of its span;
  ids become lowercase hex, times integers. Each problem is counted and said
  in one line naming the file, the line and the field
  (:meth:`Checker.warnings`). span-diff's fast decoder takes only what
  :func:`canonical_hex` and :func:`time_ns` take as it is, and leaves the
  rest to the general path, through :class:`Checker`.
* :class:`Duplicates` tells otel-run's fragments of one span (merged, as
  :mod:`._merge` says) from two different spans that share an id (kept apart:
  the later one gets a derived id and says so in ``otel_run.duplicate_of``).
* :func:`link` builds the tree from parent ids without recursion, breaks
  parent cycles (self-parent included) at their earliest span, and gives each
  span its depth.
* :func:`check_index_record` does the same for a line of the store's index.

Standard library only, no ``typing``/``re`` at import: otel-run reads its run
back through this module when the command ends.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from typing import Any

MAX_VALUE_DEPTH = 30
"""Attribute values (arrays, key-value lists) nested deeper than this are left
out: each level is three protobuf messages, and protobuf parsers (a collector
receiving ``otel-trace push``) refuse messages nested over 100 deep."""
MAX_LINES = 20
"""Warnings said per file; the rest are counted in one more line."""
DUPLICATE_OF = "otel_run.duplicate_of"
"""On a span kept apart from another with the same id: the id both had."""

_TIME_MAX = 2**64  # OTLP times are fixed64 nanoseconds
_INT_MIN, _INT_MAX = -(2**63), 2**63  # OTLP intValue is int64
KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_DOUBLE_WORDS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_RECORD = "otel_run.record"  # store._model.RECORD (not imported: _model imports this module)


class Invalid(ValueError):
    """A value that is not what its field must hold; the message says why."""


# ------------------------------------------------------------------ field checks


def hex_id(value: Any, nbytes: int) -> str:
    """A trace id (``nbytes`` 16) or span id (8) as lowercase hex.

    Accepts what OTLP JSON writes — hex, case-insensitive — and base64 (Tempo's
    JSON API, the plain protobuf JSON mapping); rejects everything else,
    including what :func:`int` would let through (``0x`` prefixes, ``_``,
    spaces, non-ASCII digits) and the all-zero id, which OTLP says is invalid.
    Raises :class:`Invalid`."""
    if not isinstance(value, str):
        raise Invalid(f"{_show(value)} is not a string")
    if len(value) == 2 * nbytes and value.isascii() and value.isalnum():
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = _base64(value, nbytes)
    else:
        raw = _base64(value, nbytes)
    if not any(raw):
        raise Invalid(f"{_show(value)} is all zeros")
    return raw.hex()


def canonical_hex(ids: Collection[str], nbytes: int) -> bool:
    """Whether every one of ``ids`` is already what :func:`hex_id` makes of it
    (lowercase hex of ``nbytes`` bytes, not all zeros): one check over all of
    them, in C loops, for hot readers; when it fails, :func:`hex_id` on each
    says which is not."""
    if not ids:
        return True
    width = 2 * nbytes
    if set(map(len, ids)) != {width} or "0" * width in ids:
        return False
    joined = "".join(ids)
    if joined.lower() != joined:
        return False
    try:
        # fromhex takes hex digits and skips ASCII whitespace: as many bytes as digit pairs means no whitespace
        return len(bytes.fromhex(joined)) * 2 == len(joined)
    except ValueError:
        return False


def time_ns(value: Any) -> int:
    """A timestamp in Unix nanoseconds: an integer (JSON number, or OTLP's
    decimal string) from 0 to 2**64 - 1. Raises :class:`Invalid`."""
    kind = type(value)
    number: int
    if kind is int:
        number = value
    elif (kind is str and value.isascii() and value.isdigit() and len(value) <= 20) or (
        kind is float and value.is_integer()
    ):
        number = int(value)
    else:
        raise Invalid(f"{_show(value)} is not a time in nanoseconds")
    if not 0 <= number < _TIME_MAX:
        raise Invalid(f"{_show(value)} is not a time in nanoseconds (outside 0 … 2**64)")
    return number


def any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP JSON ``AnyValue`` checked (the object itself, with intValue and
    doubleValue as numbers); raises :class:`Invalid` naming the field."""
    if not isinstance(value, dict):
        raise Invalid(f"value {_show(value)} is not an object")
    if depth >= MAX_VALUE_DEPTH:
        raise Invalid(f"value nested deeper than {MAX_VALUE_DEPTH} levels")
    if "stringValue" in value:
        if not isinstance(value["stringValue"], str):
            raise Invalid(f"stringValue {_show(value['stringValue'])} is not a string")
    elif "intValue" in value:
        value["intValue"] = _int64(value["intValue"])
    elif "doubleValue" in value:
        value["doubleValue"] = _double(value["doubleValue"])
    elif "boolValue" in value:
        if not isinstance(value["boolValue"], bool):
            raise Invalid(f"boolValue {_show(value['boolValue'])} is not true or false")
    elif "arrayValue" in value:
        values = _values(value["arrayValue"], "arrayValue")
        for item in values:
            any_value(item, depth + 1)
    elif "kvlistValue" in value:
        values = _values(value["kvlistValue"], "kvlistValue")
        for item in values:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise Invalid("kvlistValue holds an entry without a string key")
            if item.get("value") is not None:
                any_value(item["value"], depth + 1)
    elif "bytesValue" in value and not isinstance(value["bytesValue"], str):
        raise Invalid(f"bytesValue {_show(value['bytesValue'])} is not a string")
    return value


def finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float that is neither bool, NaN nor infinite."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value - value == 0.0


# ------------------------------------------------------------------ a file's requests


class Checker:
    """Checks the decoded requests of one file; collects what was wrong.

    Args:
        source: the file, as warnings name it.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._seen: dict[str, list[Any]] = {}  # message -> [first line, count]
        self.problems = 0

    def problem(self, line: int | None, message: str) -> None:
        """Count one problem; the first of each message is said with its line."""
        self.problems += 1
        seen = self._seen.get(message)
        if seen is None:
            self._seen[message] = [line, 1]
        else:
            seen[1] += 1

    def warnings(self) -> list[str]:
        """One line per kind of problem (at most :data:`MAX_LINES`), naming the file and line."""
        out = []
        for message, (line, count) in self._seen.items():
            where = f"{self.source}:{line}" if line is not None else self.source
            more = f" ({count - 1} more like it)" if count > 1 else ""
            out.append(f"{where}: {message}{more}")
        if len(out) > MAX_LINES:
            rest = sum(c for _, c in list(self._seen.values())[MAX_LINES - 1 :])
            out[MAX_LINES - 1 :] = [f"{self.source}: {rest} more problems of {len(out) - MAX_LINES + 1} other kinds"]
        return out

    def request(self, obj: Any, line: int | None = None, *, alone: bool = False) -> Any:
        """The request ``obj`` with what is not valid left out (changed in
        place), or None when nothing of it is OTLP JSON. ``alone``: the file's
        only document, which is returned as it is when it is not OTLP JSON at
        all, so that the reader says what it looks like instead."""
        batches = obj.get("resourceSpans", obj.get("batches")) if isinstance(obj, dict) else None
        if not isinstance(batches, list):
            if alone:
                return obj
            if not isinstance(obj, dict):
                self.problem(
                    line, f"line skipped: a {type(obj).__name__}, not an OTLP JSON object with 'resourceSpans'"
                )
            elif batches is None:
                self.problem(line, "line skipped: an object without 'resourceSpans', not OTLP JSON")
            else:
                self.problem(line, "line skipped: 'resourceSpans' is not a list")
            return None
        kept = []
        for batch in batches:
            if not isinstance(batch, dict):
                self.problem(line, f"'resourceSpans' entry skipped: a {type(batch).__name__}, not an object")
                continue
            if self._batch(batch, line):
                kept.append(batch)
        return {"resourceSpans": kept}

    # ---------------------------------------------------------------- private

    def _batch(self, batch: dict[str, Any], line: int | None) -> bool:
        resource = batch.get("resource")
        if resource is not None and not isinstance(resource, dict):
            self.problem(line, f"'resource' {_show(resource)} is not an object: left out")
            batch["resource"] = resource = None
        if resource:
            resource["attributes"] = self._attributes(resource.get("attributes"), line, "resource")
        scopes = batch.get("scopeSpans", batch.get("instrumentationLibrarySpans"))
        batch.pop("instrumentationLibrarySpans", None)
        if scopes is None:
            scopes = []
        if not isinstance(scopes, list):
            self.problem(line, f"'scopeSpans' {_show(scopes)} is not a list: its spans skipped")
            return False
        kept = []
        for scope_spans in scopes:
            if not isinstance(scope_spans, dict):
                self.problem(line, f"'scopeSpans' entry {_show(scope_spans)} is not an object: skipped")
                continue
            self._scope(scope_spans, line)
            spans = scope_spans.get("spans")
            if spans is None:
                spans = []
            if not isinstance(spans, list):
                self.problem(line, f"'spans' {_show(spans)} is not a list: skipped")
                continue
            scope_spans["spans"] = [s for s in (self._span(raw, line) for raw in spans) if s is not None]
            kept.append(scope_spans)
        batch["scopeSpans"] = kept
        return True

    def _scope(self, scope_spans: dict[str, Any], line: int | None) -> None:
        key = "scope" if "scope" in scope_spans else "instrumentationLibrary"
        scope = scope_spans.pop(key, None)
        if scope is None:
            return
        if not isinstance(scope, dict):
            self.problem(line, f"'scope' {_show(scope)} is not an object: left out")
            return
        name, version = scope.get("name", ""), scope.get("version")
        if not isinstance(name, str):
            self.problem(line, f"scope name {_show(name)} is not a string: left out")
            name = ""
        if version is not None and not isinstance(version, str):
            self.problem(line, f"scope version {_show(version)} is not a string: left out")
            version = None
        scope_spans["scope"] = {"name": name, "version": version} if version else {"name": name}

    def _span(self, raw: Any, line: int | None) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.problem(line, f"span skipped: {_show(raw)} is not an object")
            return None
        try:
            raw["traceId"] = hex_id(_required(raw, "traceId"), 16)
        except Invalid as exc:
            self.problem(line, f"span skipped: traceId {exc}")
            return None
        try:
            span_id = raw["spanId"] = hex_id(_required(raw, "spanId"), 8)
        except Invalid as exc:
            self.problem(line, f"span skipped: spanId {exc}")
            return None
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            try:
                raw[key] = time_ns(raw.get(key, 0))
            except Invalid as exc:
                self.problem(line, f"span {span_id} skipped: {key} {exc}")
                return None
        parent = raw.get("parentSpanId")
        if parent:
            try:
                raw["parentSpanId"] = hex_id(parent, 8)
            except Invalid as exc:
                self.problem(line, f"span {span_id}: parentSpanId {exc}: taken as having no parent")
                del raw["parentSpanId"]
        name = raw.get("name", "")
        if not isinstance(name, str):
            self.problem(line, f"span {span_id}: name {_show(name)} is not a string: left empty")
            raw["name"] = ""
        self._kind(raw, span_id, line)
        self._status(raw, span_id, line)
        state = raw.get("traceState", "")
        if not isinstance(state, str):
            self.problem(line, f"span {span_id}: traceState {_show(state)} is not a string: left out")
            raw["traceState"] = ""
        raw["attributes"] = self._attributes(raw.get("attributes"), line, f"span {span_id}")
        if raw.get("events"):
            raw["events"] = self._events(raw["events"], line, span_id)
        if raw.get("links"):
            raw["links"] = self._links(raw["links"], line, span_id)
        return raw

    def _kind(self, raw: dict[str, Any], span_id: str, line: int | None) -> None:
        kind = raw.get("kind", 1)
        if isinstance(kind, str) and kind in KINDS:
            raw["kind"] = KINDS[kind]
        elif type(kind) is not int or not 0 <= kind <= 5:
            self.problem(line, f"span {span_id}: kind {_show(kind)} is not a span kind (0-5): taken as internal")
            raw["kind"] = 1

    def _status(self, raw: dict[str, Any], span_id: str, line: int | None) -> None:
        status = raw.get("status")
        if status is None:
            return
        if not isinstance(status, dict):
            self.problem(line, f"span {span_id}: status {_show(status)} is not an object: left out")
            raw["status"] = {}
            return
        code = status.get("code", 0)
        if isinstance(code, str) and code in CODES:
            code = CODES[code]
        if type(code) is not int or not 0 <= code <= 2:
            self.problem(line, f"span {span_id}: status code {_show(code)} is not 0, 1 or 2: taken as unset")
            code = 0
        message = status.get("message", "")
        if not isinstance(message, str):
            self.problem(line, f"span {span_id}: status message {_show(message)} is not a string: left out")
            message = ""
        raw["status"] = {"code": code, "message": message}

    def _attributes(self, items: Any, line: int | None, owner: str) -> list[Any]:
        if not items:
            return []
        if not isinstance(items, list):
            self.problem(line, f"{owner}: attributes {_show(items)} is not a list: left out")
            return []
        kept = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                self.problem(line, f"{owner}: attribute {_show(item)} has no string key: left out")
                continue
            value = item.get("value")
            if value is None:
                item["value"] = {}
            else:
                try:
                    any_value(value)
                except Invalid as exc:
                    self.problem(line, f"{owner}: attribute {_show(item['key'])}: {exc}: left out")
                    continue
            kept.append(item)
        return kept

    def _events(self, events: Any, line: int | None, span_id: str) -> list[Any]:
        if not isinstance(events, list):
            self.problem(line, f"span {span_id}: events {_show(events)} is not a list: left out")
            return []
        kept = []
        for event in events:
            if not isinstance(event, dict):
                self.problem(line, f"span {span_id}: event {_show(event)} is not an object: left out")
                continue
            try:
                event["timeUnixNano"] = time_ns(event.get("timeUnixNano", 0))
            except Invalid as exc:
                self.problem(line, f"span {span_id}: event timeUnixNano {exc}: event left out")
                continue
            if not isinstance(event.get("name", ""), str):
                self.problem(line, f"span {span_id}: event name {_show(event['name'])} is not a string: left empty")
                event["name"] = ""
            event["attributes"] = self._attributes(event.get("attributes"), line, f"span {span_id} event")
            kept.append(event)
        return kept

    def _links(self, links: Any, line: int | None, span_id: str) -> list[Any]:
        if not isinstance(links, list):
            self.problem(line, f"span {span_id}: links {_show(links)} is not a list: left out")
            return []
        kept = []
        for link in links:
            try:
                if not isinstance(link, dict):
                    raise Invalid(f"{_show(link)} is not an object")
                link["traceId"] = hex_id(link.get("traceId"), 16)
                link["spanId"] = hex_id(link.get("spanId"), 8)
            except Invalid as exc:
                self.problem(line, f"span {span_id}: link {exc}: left out")
                continue
            link["attributes"] = self._attributes(link.get("attributes"), line, f"span {span_id} link")
            kept.append(link)
        return kept


# ------------------------------------------------------------------ span ids shared by two spans


class Duplicates:
    """Tells fragments of one span from different spans sharing an id.

    otel-run writes one span in several records (``otel_run.record`` start,
    reap, waited; an ``exec`` that failed writes a complete record twice), all
    with the span's start and parent. A complete record (no marker) whose id an
    earlier complete record has, with another start time or another parent,
    is a different span: it gets a derived id (:meth:`span_id`), so readers
    keep the two apart and say so, instead of merging them into one.
    """

    def __init__(self) -> None:
        self._first: dict[str, tuple[int, str | None]] = {}
        self._others: dict[str, list[tuple[int, str | None, str]]] = {}
        self.found: list[tuple[str, str]] = []
        """(the shared id, the id given to the later span), in order."""

    def span_id(self, span_id: str, complete: bool, start: int, parent: str | None) -> str:
        """The id the record ``span_id`` is read under."""
        if not complete:
            return span_id
        first = self._first.get(span_id)
        if first is None:
            self._first[span_id] = (start, parent)
            return span_id
        if same_span(first[0], first[1], start, parent):
            return span_id
        others = self._others.setdefault(span_id, [])
        for other_start, other_parent, other_id in others:
            if other_start == start and other_parent == parent:
                return other_id
        new_id = _derived_id(span_id, len(others) + 1)
        others.append((start, parent, new_id))
        self.found.append((span_id, new_id))
        return new_id

    def warnings(self, source: str, names: dict[str, str] | None = None) -> list[str]:
        """One line per shared id (at most :data:`MAX_LINES`)."""
        out = []
        for shared, new_id in self.found[:MAX_LINES]:
            named = ""
            if names is not None and shared in names and new_id in names:
                named = f" ({_show(names[shared])} and {_show(names[new_id])})"
            out.append(
                f"{source}: duplicate span id {shared}: two different spans{named}; kept apart, the later as {new_id}"
            )
        if len(self.found) > MAX_LINES:
            out.append(f"{source}: {len(self.found) - MAX_LINES} more duplicate span ids kept apart")
        return out


def same_span(start: int, parent: str | None, other_start: int, other_parent: str | None) -> bool:
    """Whether two complete records with one span id are the same span (see
    :class:`Duplicates`): the same start, and the same parent where both have one."""
    return start == other_start and (parent == other_parent or not parent or not other_parent)


def separate_duplicates(records: list[Any], source: str, warnings: list[str]) -> list[Any]:
    """Give each :class:`~._model.Span` record that is a different span from an
    earlier one with its id a derived id (see :class:`Duplicates`), marked
    with :data:`DUPLICATE_OF`; adds a warning per shared id to ``warnings``."""
    duplicates = Duplicates()
    for record in records:
        complete = _RECORD not in record.attributes
        span_id = duplicates.span_id(record.span_id, complete, record.start_ns, record.parent_id)
        if span_id != record.span_id:
            record.attributes[DUPLICATE_OF] = record.span_id
            record.span_id = span_id
    if duplicates.found:
        names = {r.span_id: r.name for r in records if _RECORD not in r.attributes}
        warnings.extend(duplicates.warnings(source, names))
    return records


# ------------------------------------------------------------------ the tree


def link(
    ids: Sequence[str], parents: Sequence[str | None], starts: Sequence[int], source: str, warnings: list[str]
) -> tuple[list[int], list[int]]:
    """Each span's parent (its index, -1 for a root) and depth (0 for a root),
    without recursion.

    A span whose parent is not there is a root (an orphan, for the callers to
    show as such); a span that is its own parent, or whose parent chain loops,
    becomes a root at the earliest span of the loop, with a warning in
    ``warnings``. When two spans share an id, children go to the first."""
    n = len(ids)
    index: dict[str, int] = {}
    for i, span_id in enumerate(ids):
        index.setdefault(span_id, i)
    parent = [-1] * n
    for i, parent_id in enumerate(parents):
        if parent_id is not None:
            p = index.get(parent_id, -1)
            if p == i:
                warnings.append(f"{source}: span {ids[i]} is its own parent: shown as a root")
            else:
                parent[i] = p
    depth = [0] * n
    state = bytearray(n)  # 0: not seen, 1: on the chain being walked, 2: depth known
    loops = 0
    i = 0
    while i < n:
        if state[i]:
            i += 1
            continue
        path = []
        j = i
        while j >= 0 and not state[j]:
            state[j] = 1
            path.append(j)
            j = parent[j]
        if j >= 0 and state[j] == 1:  # the chain came back to itself: cut the loop, walk again
            loop = path[path.index(j) :]
            cut = min(loop, key=lambda k: (starts[k], k))
            parent[cut] = -1
            loops += 1
            if loops <= MAX_LINES:
                shown = " → ".join(ids[k] for k in loop[:3]) + (" → …" if len(loop) > 3 else f" → {ids[loop[0]]}")
                warnings.append(
                    f"{source}: parent chain loops ({shown}; {len(loop)} spans): span {ids[cut]} shown as a root"
                )
            for k in path:
                state[k] = 0
            continue
        level = depth[j] + 1 if j >= 0 else 0
        for k in reversed(path):
            depth[k] = level
            state[k] = 2
            level += 1
        i += 1
    if loops > MAX_LINES:
        warnings.append(f"{source}: {loops - MAX_LINES} more parent loops broken")
    return parent, depth


def check_index_record(record: dict[str, Any], where: str, warnings: list[str]) -> dict[str, Any] | None:
    """An index line's fields that hold what they must (others left out, each
    with a warning); None, with a warning, when it names no run."""
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        warnings.append(f"{where}: index line without a run_id string ({_show(run_id)}): skipped")
        return None
    out: dict[str, Any] = {"run_id": run_id}
    for key, value in record.items():
        check = _INDEX_FIELDS.get(key)
        if check is None or value is None:
            continue
        try:
            out[key] = check(value)
        except Invalid as exc:
            warnings.append(f"{where}: index field {key} {exc}: left out")
    return out


# ------------------------------------------------------------------ private


def _required(raw: dict[str, Any], key: str) -> Any:
    if key not in raw:
        raise Invalid("is missing")
    return raw[key]


def _base64(value: str, nbytes: int) -> bytes:
    import base64
    import binascii

    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{_show(value)} is neither {2 * nbytes} hex digits nor base64") from None
    if len(raw) != nbytes:
        raise Invalid(f"{_show(value)} is neither {2 * nbytes} hex digits nor base64 of {nbytes} bytes")
    return raw


def _int64(value: Any) -> int:
    kind = type(value)
    number: int | None = None
    if kind is int:
        number = value
    elif kind is str:
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            number = int(value)
    elif kind is float and value.is_integer():
        number = int(value)
    if number is None:
        raise Invalid(f"intValue {_show(value)} is not an integer")
    if not _INT_MIN <= number < _INT_MAX:
        raise Invalid(f"intValue {_show(value)} does not fit 64 bits")
    return number


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if kind is str:
        if value in _DOUBLE_WORDS:
            return _DOUBLE_WORDS[value]
        if value.isascii():
            try:
                return float(value)
            except ValueError:
                pass
    raise Invalid(f"doubleValue {_show(value)} is not a number")


def _values(container: Any, field: str) -> list[Any]:
    if container is None:
        return []
    if not isinstance(container, dict):
        raise Invalid(f"{field} {_show(container)} is not an object")
    values = container.get("values")
    if values is None:
        return []
    if not isinstance(values, list):
        raise Invalid(f"{field} values {_show(values)} is not a list")
    return values


def _derived_id(span_id: str, n: int) -> str:
    """A span id for the n-th other span sharing ``span_id`` (deterministic, never zero)."""
    value = (int(span_id, 16) ^ (0x9E3779B97F4A7C15 * n)) & 0xFFFFFFFFFFFFFFFF
    return f"{value or n:016x}"


def _show(value: Any) -> str:
    """A value as a warning quotes it: short, on one line."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    text = text.replace("\n", "\\n")
    return text if len(text) <= 40 else text[:37] + "…"


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{_show(value)} is not a string")
    return value


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise Invalid(f"{_show(value)} is not a count")
    return value  # type: ignore[no-any-return]


def _int(value: Any) -> int:
    if type(value) is not int:
        raise Invalid(f"{_show(value)} is not an integer")
    return value  # type: ignore[no-any-return]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{_show(value)} is not true or false")
    return value


def _plain_id(value: Any) -> str:
    """An id as the index holds it: hex from otel-run; anything of ASCII
    letters and digits is taken (it names a file: no ``/``, no ``..``)."""
    if not isinstance(value, str) or not value or not value.isascii() or not value.isalnum():
        raise Invalid(f"{_show(value)} is not an id (ASCII letters and digits)")
    return value


def _command(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{_show(value)} is not a list of strings")
    return value


_INDEX_FIELDS = {
    "event": _string,
    "trace_id": _plain_id,
    "root_span_id": _plain_id,
    "command": _command,
    "cwd": _string,
    "host": _string,
    "pid": _count,
    "python": _string,
    "start_ns": time_ns,
    "end_ns": time_ns,
    "exit_code": _int,
    "label": _string,
    "git_commit": _string,
    "spans": _count,
    "processes": _count,
    "warmup": _bool,
    "series": _string,
    "repeat": _count,
}
