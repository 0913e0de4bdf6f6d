"""The boundary ledger: what each boundary a trace crosses costs.

* **round-trips**, per caller and endpoint: calls, errors, time, bytes up and
  down, (de)serialization time on the caller's side, new vs reused TCP
  connections and their set-up time, resends;
* **server side**, per service and route: requests, time, LLM time and the
  rest (the backend's own overhead), split into request deserialization,
  prompt assembly, completion parsing, storage and response serialization;
* **LLM calls**, per model: calls, time, tokens, time to first token;
* **subprocesses**, per service: how many, and what each paid from spawn to its
  interpreter being ready (start-up and imports).

Everything is read from span attributes of the OpenTelemetry semantic
conventions (``http.*``, ``gen_ai.*``, ``db.*``) and the few otel-run adds, so
it works on any trace these instrumentations produced.
"""

from __future__ import annotations

from otel_run.store._model import Span, Trace

TYPE_CHECKING = False  # otel-run prints the headline after every run: no typing, re or statistics at import
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

KIND_SERVER, KIND_CLIENT = 2, 3
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


def ledger(trace: Trace) -> dict[str, Any]:
    """The ledger of a trace, as plain data (``otel-trace show --format json``)."""
    return {
        "round_trips": round_trips(trace),
        "servers": servers(trace),
        "llm": llm_calls(trace),
        "subprocesses": subprocesses(trace),
    }


# ------------------------------------------------------------- round-trips


def round_trips(trace: Trace) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for span in trace.spans:
        if span.kind != KIND_CLIENT or not _method(span):
            continue
        api = _api_span(span)
        endpoint = str(api.attributes.get("codeflash.api.endpoint")) if api is not None else _path(span)
        host = _host(span)
        key = (span.service, host, f"{_method(span)} {endpoint}")
        row = rows.setdefault(
            key,
            {
                "caller": span.service,
                "server": host,
                "endpoint": f"{_method(span)} {endpoint}",
                "calls": 0,
                "errors": 0,
                "durations_ms": [],
                "bytes_up": 0,
                "bytes_down": 0,
                "serialize_ms": 0.0,
                "deserialize_ms": 0.0,
                "new_connections": 0,
                "reused_connections": 0,
                "connect_ms": 0.0,
                "resends": 0,
                "internet": host.split(":")[0] not in _LOOPBACK,
            },
        )
        row["calls"] += 1
        row["durations_ms"].append(span.duration_ns / 1e6)
        status = _int(span.attributes.get("http.response.status_code", span.attributes.get("http.status_code")))
        if span.status_code == 2 or (status is not None and status >= 400):
            row["errors"] += 1
        row["bytes_up"] += _size(span, api, "http.request.body.size")
        row["bytes_down"] += _size(span, api, "http.response.body.size")
        connects = [c for c in span.children if c.name == "connect"]
        if connects or span.attributes.get("otel_run.http.connection.new"):
            row["new_connections"] += 1
            row["connect_ms"] += sum(c.duration_ns for c in connects) / 1e6
        else:
            row["reused_connections"] += 1
        row["resends"] += _int(span.attributes.get("http.request.resend_count")) or 0
        if api is not None and _first_http_call(api) is not span:  # the API call tried again
            row["resends"] += 1
        if api is not None:
            for child in api.children:
                if child.name == "serialize request":
                    row["serialize_ms"] += child.duration_ns / 1e6
                elif child.name == "deserialize response":
                    row["deserialize_ms"] += child.duration_ns / 1e6
    out = []
    for row in rows.values():
        durations = row.pop("durations_ms")
        row["total_ms"] = sum(durations)
        row["median_ms"] = _median(durations)
        out.append(row)
    return sorted(out, key=lambda r: -r["total_ms"])


# ------------------------------------------------------------ server side

_STAGES = {  # the stage spans (otel_run.stage) of a backend pipeline, as the reference backend names them
    "request.deserialize": "deserialize_ms",
    "prompt.assemble": "prompt_ms",
    "completion.parse": "parse_ms",
    "tests.instrument": "instrument_ms",
    "result.store": "store_ms",
    "response.serialize": "serialize_ms",
}


def servers(trace: Trace) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for span in trace.spans:
        if span.kind != KIND_SERVER:
            continue
        key = (span.service, span.name)
        row = rows.setdefault(
            key,
            {
                "service": span.service,
                "route": span.name,
                "requests": 0,
                "total_ms": 0.0,
                "llm_ms": 0.0,
                "llm_calls": 0,
                "db_ms": 0.0,
                **{v: 0.0 for v in _STAGES.values()},
            },
        )
        row["requests"] += 1
        row["total_ms"] += span.duration_ns / 1e6
        for inner in _descendants_in_process(span):
            if _is_llm(inner):
                row["llm_ms"] += inner.duration_ns / 1e6
                row["llm_calls"] += 1
            elif inner.attributes.get("db.system") or inner.attributes.get("db.system.name"):
                row["db_ms"] += inner.duration_ns / 1e6
            elif inner.name in _STAGES:
                row[_STAGES[inner.name]] += inner.duration_ns / 1e6
    out = []
    for row in rows.values():
        row["overhead_ms"] = row["total_ms"] - row["llm_ms"]
        out.append(row)
    return sorted(out, key=lambda r: -r["total_ms"])


def _is_llm(span: Span) -> bool:
    return bool(span.attributes.get("gen_ai.operation.name"))


def _under_a_server(span: Span) -> bool:
    parent = span.parent
    while parent is not None:
        if parent.kind == KIND_SERVER:
            return True
        parent = parent.parent
    return False


def _descendants_in_process(root: Span) -> Iterable[Span]:
    """Spans under ``root`` in the same process (a client call's server span, in
    another process, belongs to that process's own row)."""
    pid = root.resource.attributes.get("process.pid")
    stack = list(root.children)
    while stack:
        span = stack.pop()
        if span.resource.attributes.get("process.pid") != pid or span.kind == KIND_SERVER:
            continue
        yield span
        stack.extend(span.children)


# -------------------------------------------------------------------- LLM


def llm_calls(trace: Trace) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for span in trace.spans:
        operation = span.attributes.get("gen_ai.operation.name")
        if not operation:
            continue
        model = str(span.attributes.get("gen_ai.response.model") or span.attributes.get("gen_ai.request.model") or "?")
        key = (span.service, model)
        row = rows.setdefault(
            key,
            {
                "service": span.service,
                "model": model,
                "operation": str(operation),
                "calls": 0,
                "total_ms": 0.0,
                "input_tokens": 0,
                "output_tokens": 0,
                "ttft_ms": [],
            },
        )
        row["calls"] += 1
        row["total_ms"] += span.duration_ns / 1e6
        row["input_tokens"] += _int(span.attributes.get("gen_ai.usage.input_tokens")) or 0
        row["output_tokens"] += _int(span.attributes.get("gen_ai.usage.output_tokens")) or 0
        parent = span.parent
        ttft = parent.attributes.get("gen_ai.response.time_to_first_chunk") if parent is not None else None
        if isinstance(ttft, (int, float)):
            row["ttft_ms"].append(ttft * 1000)
    out = []
    for row in rows.values():
        ttft = row.pop("ttft_ms")
        row["median_ttft_ms"] = _median(ttft) if ttft else None
        out.append(row)
    return sorted(out, key=lambda r: -r["total_ms"])


# --------------------------------------------------------------- processes


def subprocesses(trace: Trace) -> list[dict[str, Any]]:
    """Processes per service: how many, their summed wall time, the time at
    least one was running (``busy_ms``: parallel processes are not summed
    twice), how many ran at once at the most, and their start-up."""
    rows: dict[str, dict[str, Any]] = {}
    intervals: dict[str, list[tuple[int, int]]] = {}
    for span in trace.spans:
        if not span.is_process:
            continue
        row = rows.setdefault(span.service, {"service": span.service, "count": 0, "wall_ms": 0.0, "startup_ms": []})
        row["count"] += 1
        row["wall_ms"] += span.duration_ns / 1e6
        intervals.setdefault(span.service, []).append((span.start_ns, span.end_ns))
        started = next((e.time_ns for e in span.events if e.name == "python.started"), None)
        if started is not None and started >= span.start_ns:
            row["startup_ms"].append((started - span.start_ns) / 1e6)
    out = []
    for service, row in rows.items():
        startup = row.pop("startup_ms")
        row["busy_ms"], row["max_concurrent"] = _busy(intervals[service])
        row["python"] = bool(startup)
        row["median_startup_ms"] = _median(startup) if startup else None
        row["total_startup_ms"] = sum(startup)
        out.append(row)
    return sorted(out, key=lambda r: (-r["count"], r["service"]))


def _busy(intervals: list[tuple[int, int]]) -> tuple[float, int]:
    """(ms covered by the union of the intervals, the most that overlap)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    busy = running = most = 0
    since = 0
    for at, step in edges:  # an end sorts before a start at the same instant
        if running and at > since:
            busy += at - since
        since = at
        running += step
        most = max(most, running)
    return busy / 1e6, most


def headline(trace: Trace) -> str:
    """One line for otel-run's summary: round-trips, bytes, connections, LLM
    share of server time, subprocesses and their start-up ("" for a run that
    crossed no boundary: no HTTP, no server, one Python process at most)."""
    if (
        not any(s.kind in (KIND_SERVER, KIND_CLIENT) for s in trace.spans)
        and sum(1 for s in trace.spans if s.is_process and any(e.name == "python.started" for e in s.events)) < 2
    ):
        return ""
    trips = round_trips(trace)
    parts = []
    if trips:
        calls = sum(r["calls"] for r in trips)
        new = sum(r["new_connections"] for r in trips)
        up, down = sum(r["bytes_up"] for r in trips), sum(r["bytes_down"] for r in trips)
        parts.append(f"{calls} HTTP round-trips ({_bytes(up)} up, {_bytes(down)} down, {new} new connections)")
    front = [s for s in trace.spans if s.kind == KIND_SERVER and not _under_a_server(s)]
    if front:  # the servers the command called (not the LLM server a backend called: its time is inside)
        total = sum(s.duration_ns for s in front) / 1e6
        llm = sum(i.duration_ns for s in front for i in _descendants_in_process(s) if _is_llm(i)) / 1e6
        parts.append(f"server {total / 1000:.2f} s of which LLM {llm / 1000:.2f} s")
    procs = [r for r in subprocesses(trace) if r["python"]]
    if procs:
        count = sum(r["count"] for r in procs)
        startup = sum(r["total_startup_ms"] for r in procs)
        parts.append(f"{count} Python processes paid {startup / 1000:.2f} s in start-up")
    return " · ".join(parts)


# ----------------------------------------------------------------- helpers


def _median(values: list[float]) -> float:
    # not statistics.median: importing statistics costs ~4.5 ms, and the ledger's
    # headline is on otel-run's end-of-run path
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _size(span: Span, api: Span | None, key: str) -> int:
    """A body size from the HTTP span, else from the API call span above it."""
    size = _int(span.attributes.get(key))
    if size is None and api is not None:
        size = _int(api.attributes.get(key))
    return size or 0


def _method(span: Span) -> str | None:
    value = span.attributes.get("http.request.method", span.attributes.get("http.method"))
    return str(value) if value else None


def _api_span(span: Span) -> Span | None:
    parent = span.parent
    while parent is not None and parent.resource is span.resource:
        if "codeflash.api.endpoint" in parent.attributes:
            return parent
        if parent.kind in (KIND_SERVER, KIND_CLIENT):
            return None
        parent = parent.parent
    return None


def _first_http_call(api: Span) -> Span | None:
    return min(
        (c for c in api.children if c.kind == KIND_CLIENT and _method(c)), key=lambda c: c.start_ns, default=None
    )


def _url(span: Span) -> str:
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


def _path(span: Span) -> str:
    """The URL path, with id-like segments (numbers, hex, uuids) as ``:id``."""
    from urllib.parse import urlsplit

    path = urlsplit(_url(span)).path or str(span.attributes.get("url.path", "")) or "/"
    return "/".join(":id" if _is_id(part) else part for part in path.split("/")) or "/"


def _is_id(segment: str) -> bool:
    if segment.isdigit():
        return True
    hexish = segment.replace("-", "")
    return len(hexish) >= 8 and all(c in "0123456789abcdefABCDEF" for c in hexish)


def _host(span: Span) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(_url(span))
    host = parts.hostname or str(span.attributes.get("server.address", span.attributes.get("net.peer.name", "?")))
    port = parts.port or _int(span.attributes.get("server.port", span.attributes.get("net.peer.port")))
    return f"{host}:{port}" if port else host


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024 or unit == "MiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} B"
