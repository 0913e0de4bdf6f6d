"""Bad input never crashes or hangs a reader (issue 12, part 3).

A malformed corpus — JSON nested 100,000 deep, span chains 1,000 / 5,000 /
100,000 deep, parent cycles, duplicate span ids, ids that are not ids, values
of the wrong type, huge numbers, NaN, negative durations, strings where objects
belong, empty and only-corrupt files, hostile index lines — is fed to every
reader command (``otel-trace list``, ``show`` (text and JSON), ``export``
(OTLP and Chrome), ``push`` to a real loopback receiver and to a dead port,
``span-diff`` on the file and on the store's runs), each a real process under
a generous deadline. Every call must end without a traceback and without
hanging, say what is wrong in one line naming the file or field, and show
the valid remainder: the spans of the case that are fine.

``bench/bad_input.py`` runs the same corpus against any checkout and prints
the number of tracebacks and hangs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import otel_run
from tests.conftest import clean_env

TIMEOUT_S = 180.0
"""A deadline per reader call: generous (a loaded machine only makes it slower); passing it is a hang."""

T = "4bf92f3577b34da6a3ce929d0e0e4736"
RUN = "5f2c0e7a9b1d4c3e8a6f0b2d4e6a8c0e"
ROOT, WORK, STEP = "a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
TRACEBACK = "Traceback (most recent call last)"


# ------------------------------------------------------------------ building blocks


def span(span_id: Any, parent: Any, name: Any, start: Any, end: Any, **fields: Any) -> dict[str, Any]:
    """One OTLP JSON span; times given as ints are written as OTLP's decimal strings."""
    out: dict[str, Any] = {"traceId": fields.pop("trace_id", T), "spanId": span_id}
    if parent is not None:
        out["parentSpanId"] = parent
    out["name"] = name
    out["kind"] = fields.pop("kind", 1)
    out["startTimeUnixNano"] = str(start) if type(start) is int else start
    out["endTimeUnixNano"] = str(end) if type(end) is int else end
    out["attributes"] = fields.pop("attributes", [])
    out.update(fields)
    return out


def request(spans: list[Any], service: str = "job", **batch: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "corpus"}, "spans": spans}],
    }
    entry.update(batch)
    return {"resourceSpans": [entry]}


def line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()


def root_span(**fields: Any) -> dict[str, Any]:
    attrs = [{"key": "otel_run.run.id", "value": {"stringValue": RUN}}]
    return span(ROOT, fields.pop("parent", None), "otel-run job", T0, T0 + 100 * MS, attributes=attrs, **fields)


def work_span(**fields: Any) -> dict[str, Any]:
    return span(WORK, fields.pop("parent", ROOT), "work", T0 + 10 * MS, T0 + 60 * MS, **fields)


def step_span(**fields: Any) -> dict[str, Any]:
    return span(STEP, fields.pop("parent", WORK), "step", T0 + 20 * MS, T0 + 40 * MS, **fields)


def base() -> list[dict[str, Any]]:
    """The valid remainder of most cases: the run's root, ``work`` and ``step``."""
    return [root_span(), work_span(), step_span()]


def with_bad(*bad: Any) -> list[bytes]:
    """The valid spans on one line, then a line holding the bad spans."""
    return [line(request(base())), line(request(list(bad)))]


def bad_span(**fields: Any) -> dict[str, Any]:
    """A span that is fine but for ``fields``."""
    values: dict[str, Any] = {
        "span_id": "d4d4d4d4d4d4d4d4",
        "parent": WORK,
        "name": "bad",
        "start": T0 + 42 * MS,
        "end": T0 + 50 * MS,
    }
    for key in list(values):
        if key in fields:
            values[key] = fields.pop(key)
    return span(values["span_id"], values["parent"], values["name"], values["start"], values["end"], **fields)


def attribute(value: Any, key: str = "k") -> dict[str, Any]:
    return bad_span(
        name="attributed", attributes=[{"key": "ok", "value": {"intValue": "1"}}, {"key": key, "value": value}]
    )


def chain(depth: int, *, unfinished: bool = False) -> list[bytes]:
    """The root, then ``depth`` spans each the parent of the next (one line per 5,000 spans)."""
    spans = [root_span()]
    parent = ROOT
    for i in range(depth):
        span_id = f"{i + 1:016x}"
        spans.append(span(span_id, parent, "level", T0 + MS + i, T0 + 99 * MS - i))
        parent = span_id
    if unfinished:
        marker = [{"key": "otel_run.record", "value": {"stringValue": "start"}}]
        spans[0] = span(ROOT, None, "otel-run job", T0, 0, attributes=marker)
    spans.append(span(WORK, ROOT, "work", T0 + 10 * MS, T0 + 60 * MS))
    spans.append(span(STEP, WORK, "step", T0 + 20 * MS, T0 + 40 * MS))
    return [line(request(spans[i : i + 5000])) for i in range(0, len(spans), 5000)]


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def kvlist(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "deep"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def index_line(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event": "end",
        "run_id": RUN,
        "trace_id": T,
        "root_span_id": ROOT,
        "command": ["job"],
        "cwd": "/",
        "host": "corpus",
        "start_ns": T0,
        "end_ns": T0 + 100 * MS,
        "exit_code": 0,
        "label": "corpus",
        "spans": 3,
        "processes": 0,
    }
    record.update(fields)
    return record


@dataclass
class Case:
    """One malformed input and what the readers must make of it."""

    name: str
    lines: list[bytes] | None
    """The trace file's lines (None: no trace file)."""
    warn: str | None = None
    """A word the one-line warning or error must contain (case-insensitive), when one is due."""
    spans: int | None = 3
    """How many spans the valid remainder holds (None: not checked)."""
    keep: tuple[str, ...] = ("work", "step")
    """Span names the valid remainder shows."""
    index: list[dict[str, Any]] = field(default_factory=lambda: [index_line()])
    recoverable: bool = True
    """False: an error (exit 1, one line naming the file) is a right answer too — a line that does not
    decode as JSON, whose skipping is the store's line-level recovery."""
    empty: bool = False
    """Nothing valid at all: a trace reader exits 1 with one line naming the file or saying there are no
    spans — or, when there is nothing wrong to say (``warn`` None: an empty file), exits 0 saying so."""
    diff_sees: bool = True
    """Whether span-diff reads what is wrong (it decodes only the fields a diff needs: a bad ``kind`` or
    event does not change its answer, and it need not say so)."""

    @property
    def in_index(self) -> bool:
        """What is wrong is in the index, which ``span-diff FILE`` does not read."""
        return self.name.startswith("index-")


def corpus() -> list[Case]:
    """The malformed corpus: each kind the issue names, and more."""
    deep_kv = request([work_span(attributes=[{"key": "deep", "value": kvlist(60)}])])
    return [
        # --- JSON that does not decode, or decodes as the wrong thing
        Case("json-nested-100000-last-line", [line(request(base())), nested(100_000)], "jsonl:2"),
        Case("json-nested-100000-middle", [nested(100_000), line(request(base()))], "jsonl:1", recoverable=False),
        Case("json-objects-nested-100000", [line(request(base())), nested(100_000, '{"a":', "}")], "jsonl:2"),
        Case(
            "json-nested-in-otlp-100000",
            [
                line(request(base())),
                b'{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":'
                + b'{"kvlistValue":{"values":[{"key":"k","value":' * 25_000
                + b"{}"
                + b"}]}}" * 25_000
                + b"}]}}]}",
            ],
            "jsonl:2",
        ),
        Case("attribute-kvlist-60-deep", [line(request(base())), line(deep_kv)], "deep", spans=3, diff_sees=False),
        Case("empty-file", [], None, spans=0, keep=(), empty=True),
        Case("blank-lines-only", [b"", b"   ", b""], None, spans=0, keep=(), empty=True),
        Case("only-line-corrupt", [b'{"resourceSpans":[{"resource":'], "jsonl:1", spans=0, keep=(), empty=True),
        Case("not-json-middle-line", [b"\x89PNG garbage", line(request(base()))], "jsonl:1", recoverable=False),
        Case("byte-order-mark", [b"\xef\xbb\xbf" + line(request(base()))], None, recoverable=False),
        Case("top-level-array", [line(request(base())), b"[1,2,3]"], "jsonl:2"),
        Case("top-level-string", [line(request(base())), b'"resourceSpans"'], "jsonl:2"),
        Case("object-without-resourceSpans", [line(request(base())), b'{"foo":1}'], "resourceSpans"),
        Case("resourceSpans-a-string", [line(request(base())), b'{"resourceSpans":"x"}'], "resourceSpans"),
        Case("resourceSpans-entry-a-string", [line(request(base())), b'{"resourceSpans":["x"]}'], "resourceSpans"),
        Case("resource-a-string", [line(request(base(), resource="svc"))], "resource", keep=("work", "step")),
        Case(
            "scopeSpans-an-object", [line(request(base())), line({"resourceSpans": [{"scopeSpans": {}}]})], "scopeSpans"
        ),
        Case("spans-a-string", [line(request(base())), line(request("spans"))], "spans"),  # type: ignore[arg-type]
        Case("span-a-number", with_bad(7, None, "x"), "span"),
        Case("attributes-an-object", with_bad(bad_span(attributes={"k": "v"})), "attributes", spans=4),
        Case("attribute-a-string", with_bad(bad_span(attributes=["k=v"])), "attribute", spans=4),
        Case(
            "scope-a-string",
            [line({"resourceSpans": [{"scopeSpans": [{"scope": "s", "spans": base()}]}]})],
            "scope",
            diff_sees=False,
        ),
        # --- ids that are not ids
        Case("span-id-zz", with_bad(bad_span(span_id="zz")), "spanId"),
        Case("span-id-wrong-length", with_bad(bad_span(span_id="abc123")), "spanId"),
        Case("span-id-0x-prefix", with_bad(bad_span(span_id="0x0123456789abcd")), "spanId"),
        Case("span-id-non-ascii-digits", with_bad(bad_span(span_id="١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦")), "spanId"),
        Case("span-id-underscores", with_bad(bad_span(span_id="0123_4567_89ab_c")), "spanId"),
        Case("span-id-spaces", with_bad(bad_span(span_id=" 123456789abcdef")), "spanId"),
        Case("span-id-all-zero", with_bad(bad_span(span_id="0" * 16)), "spanId"),
        Case("span-id-a-number", with_bad(bad_span(span_id=12345)), "spanId"),
        Case("span-id-missing", with_bad({k: v for k, v in bad_span().items() if k != "spanId"}), "spanId"),
        Case("trace-id-missing", with_bad({k: v for k, v in bad_span().items() if k != "traceId"}), "traceId"),
        Case("trace-id-zz", with_bad(bad_span(trace_id="zz")), "traceId"),
        Case("trace-id-all-zero", with_bad(bad_span(trace_id="0" * 32)), "traceId"),
        Case("parent-id-zz", with_bad(bad_span(parent="zz")), "parentSpanId", spans=4),
        Case("parent-id-a-list", with_bad(bad_span(parent=[1])), "parentSpanId", spans=4),
        Case(
            "ids-uppercase",  # OTLP JSON ids are case-insensitive hex: one tree, in every reader
            [line(request([root_span(), work_span(), step_span(parent=WORK.upper())]))],
            None,
        ),
        Case(
            "link-id-bad",
            with_bad(bad_span(links=[{"traceId": "zz", "spanId": "zz"}])),
            "link",
            spans=4,
            diff_sees=False,
        ),
        # --- values of the wrong type
        Case(
            "attribute-int-not-a-number",
            [line(request(base())), line(request([attribute({"intValue": "abc"})]))],
            "intValue",
            spans=4,
            diff_sees=False,
        ),
        Case(
            "attribute-int-huge",
            [line(request(base())), line(request([attribute({"intValue": "9" * 30})]))],
            "intValue",
            spans=4,
            diff_sees=False,
        ),
        Case(
            "attribute-int-a-float",
            [line(request(base())), line(request([attribute({"intValue": 1.5})]))],
            "intValue",
            spans=4,
        ),
        Case(
            "attribute-double-not-a-number",
            [line(request(base())), line(request([attribute({"doubleValue": "x"})]))],
            "doubleValue",
            spans=4,
            diff_sees=False,
        ),
        Case(
            "attribute-bool-a-string",
            [line(request(base())), line(request([attribute({"boolValue": "no"})]))],
            "boolValue",
            spans=4,
        ),
        Case(
            "attribute-string-a-number",
            [line(request(base())), line(request([attribute({"stringValue": 5})]))],
            "stringValue",
            spans=4,
        ),
        Case(
            "attribute-array-a-string",
            [line(request(base())), line(request([attribute({"arrayValue": "x"})]))],
            "arrayValue",
            spans=4,
            diff_sees=False,
        ),
        Case("attribute-value-a-string", [line(request(base())), line(request([attribute("v")]))], "value", spans=4),
        Case(
            "attribute-key-a-number",
            [line(request(base())), line(request([bad_span(attributes=[{"key": 5, "value": {}}])]))],
            "key",
            spans=4,
        ),
        Case("kind-unknown", with_bad(bad_span(kind=99)), "kind", spans=4, diff_sees=False),
        Case("kind-a-string", with_bad(bad_span(kind="SPAN_KIND_NONSENSE")), "kind", spans=4, diff_sees=False),
        Case("status-code-unknown", with_bad(bad_span(status={"code": 99})), "status", spans=4, diff_sees=False),
        Case("status-a-string", with_bad(bad_span(status="ERROR")), "status", spans=4),
        Case("name-an-object", with_bad(bad_span(name={"a": 1})), "name", spans=4, keep=("work", "step")),
        Case(
            "events-bad",
            with_bad(bad_span(events=["x", {"name": "e", "timeUnixNano": "NaN"}])),
            "event",
            spans=4,
            diff_sees=False,
        ),
        Case("trace-state-a-number", with_bad(bad_span(traceState=5)), "traceState", spans=4, diff_sees=False),
        # --- numbers
        Case("time-nan", with_bad(bad_span(start=float("nan"))), "startTimeUnixNano"),
        Case("time-infinite", with_bad(bad_span(end=float("inf"))), "endTimeUnixNano"),
        Case(
            "time-huge-number",
            [line(request(base())), line(request([bad_span(start="@")])).replace(b'"@"', b"1e400")],
            "startTimeUnixNano",
        ),
        Case("time-beyond-64-bits", with_bad(bad_span(end="9" * 25)), "endTimeUnixNano"),
        Case("time-negative", with_bad(bad_span(start="-5")), "startTimeUnixNano"),
        Case("time-a-bool", with_bad(bad_span(start=True)), "startTimeUnixNano"),
        Case("time-non-ascii-digits", with_bad(bad_span(start="١٧٠٠")), "startTimeUnixNano"),
        Case("end-before-start", with_bad(bad_span(start=T0 + 50 * MS, end=T0 + 42 * MS)), "before", spans=4),
        # --- trees that are not trees
        Case("self-parent", with_bad(bad_span(parent="d4d4d4d4d4d4d4d4")), "parent", spans=4),
        Case(
            "parent-cycle",
            with_bad(
                bad_span(span_id="e5e5e5e5e5e5e5e5", parent="f6f6f6f6f6f6f6f6"),
                bad_span(span_id="f6f6f6f6f6f6f6f6", parent="e5e5e5e5e5e5e5e5"),
            ),
            "loop",
            spans=5,
        ),
        Case("cycle-through-the-root", [line(request([root_span(parent=STEP), work_span(), step_span()]))], "loop"),
        Case(
            "duplicate-span-id",
            with_bad(span(WORK, ROOT, "impostor", T0 + 70 * MS, T0 + 90 * MS)),
            "duplicate",
            spans=4,
            keep=("work", "step", "impostor"),
        ),
        Case(
            "duplicate-root-id",
            with_bad(span(ROOT, None, "second root", T0 + 200 * MS, T0 + 300 * MS)),
            "duplicate",
            spans=4,
        ),
        Case("chain-1000-deep", chain(1000), None, spans=1003),
        Case("chain-5000-deep", chain(5000), None, spans=5003),
        Case("chain-100000-deep", chain(100_000), None, spans=100_003),
        Case("chain-5000-deep-unfinished-root", chain(5000, unfinished=True), None, spans=5003),
        # --- hostile index lines (the trace itself is fine)
        Case("index-start-a-string", [line(request(base()))], "start_ns", index=[index_line(start_ns="abc")]),
        Case("index-start-infinite", [line(request(base()))], "start_ns", index=[index_line(start_ns=float("inf"))]),
        Case("index-start-nan", [line(request(base()))], "start_ns", index=[index_line(start_ns=float("nan"))]),
        Case("index-command-a-number", [line(request(base()))], "command", index=[index_line(command=5)]),
        Case("index-label-a-number", [line(request(base()))], "label", index=[index_line(label=7)]),
        Case(
            "index-trace-id-a-path",
            [line(request(base()))],
            "trace_id",
            index=[index_line(run_id="6f" * 16, trace_id="../../../../etc/passwd"), index_line()],
        ),
        Case("index-mixed-runs", [line(request(base()))], "run_id", index=[index_line(run_id=5), index_line()]),
    ]


CASES = corpus()


# ------------------------------------------------------------------ running the readers


def code_env(code: Path | None = None) -> dict[str, str]:
    """The environment of a reader: the otel_run this test imported (or ``code``'s), nothing of ours."""
    package = code if code is not None else Path(otel_run.__file__).resolve().parents[1]
    return clean_env(PYTHONPATH=str(package), OTEL_RUN_EXPORT_TIMEOUT="2", COLUMNS="160")


def build(case: Case, root: Path) -> tuple[Path, Path]:
    """The case's store under ``root``; returns (store, trace file)."""
    store = root / "store"
    (store / "traces").mkdir(parents=True)
    (store / "index.jsonl").write_bytes(b"".join(line(r) + b"\n" for r in case.index))
    trace_file = store / "traces" / f"{T}.jsonl"
    if case.lines is not None:
        trace_file.write_bytes(b"".join(data + b"\n" for data in case.lines))
    return store, trace_file


@dataclass
class Call:
    label: str
    argv: list[str]
    reads_trace: bool = True
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    hung: bool = False

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.stderr or TRACEBACK in self.stdout or (self.returncode or 0) < 0


SHOW_ALL_UP_TO = 10_000
"""Spans up to which ``show`` gets ``--all`` (every row: rich takes ~0.5 ms a row, linear but slow)."""


def calls(store: Path, trace_file: Path, live: str, dead: str, show_all: bool = True) -> list[Call]:
    py = [sys.executable, "-c"]
    trace = [*py, "import sys; from otel_run.cli._trace import main; sys.exit(main())", "--store", str(store)]
    diff = [*py, "import sys; from otel_run.cli._diff import main; sys.exit(main())", "--store", str(store)]
    return [
        Call("list", [*trace, "list"], reads_trace=False),
        Call("show", [*trace, "show", *(["--all"] if show_all else [])]),
        Call("show-json", [*trace, "show", "--format", "json"]),
        Call("export-otlp", [*trace, "export", "--format", "otlp"]),
        Call("export-chrome", [*trace, "export", "--format", "chrome"]),
        Call("push-live", [*trace, "push", "--endpoint", live]),
        Call("push-dead", [*trace, "push", "--endpoint", dead]),
        Call(
            "span-diff-files", [*diff, str(trace_file), str(trace_file), "--format", "json", "--all", "--workers", "1"]
        ),
        Call("span-diff-runs", [*diff, f"runs:{RUN}", f"runs:{RUN}", "--all", "--workers", "1"]),
    ]


def run_call(call: Call, env: dict[str, str], timeout: float) -> Call:
    try:
        done = subprocess.run(call.argv, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        call.hung = True
        call.stdout = (exc.stdout or b"")[-2000:].decode("utf-8", "replace")
        call.stderr = (exc.stderr or b"")[-2000:].decode("utf-8", "replace")
        return call
    call.returncode = done.returncode
    call.stdout = done.stdout.decode("utf-8", "replace")
    call.stderr = done.stderr.decode("utf-8", "replace")
    return call


def run_case(case: Case, root: Path, live: str, dead: str, env: dict[str, str], timeout: float) -> list[Call]:
    store, trace_file = build(case, root)
    todo = calls(store, trace_file, live, dead, _show_all(case))
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(lambda c: run_call(c, env, timeout), todo))


class Receiver(ThreadingHTTPServer):
    """A real OTLP/HTTP endpoint on loopback that takes every request (200, empty response)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def dead_endpoint() -> str:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def started_receiver() -> tuple[Receiver, Callable[[], None]]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server, stop


# ------------------------------------------------------------------ what is right


def problems(case: Case, done: list[Call], trace_file: Path) -> list[str]:
    """What is wrong with the readers' answers to ``case`` (empty: all right)."""
    out = []
    for call in done:
        what = f"{case.name} / {call.label}"
        if call.hung:
            out.append(f"{what}: no answer within the deadline (hung)")
            continue
        if call.traceback:
            tail = (call.stderr or call.stdout).strip().splitlines()[-1:] or [""]
            out.append(f"{what}: traceback ({tail[0][:200]})")
            continue
        if call.label == "push-dead":
            if call.returncode != 1:
                out.append(f"{what}: exit {call.returncode} pushing to a dead port")
            continue
        if call.returncode not in (0, 1):
            out.append(f"{what}: exit {call.returncode}")
            continue
        if call.returncode == 1:
            errors = [ln for ln in call.stderr.splitlines() if ": error: " in ln]
            if len(errors) != 1:
                out.append(f"{what}: exit 1 without a one-line error: {call.stderr[-300:]!r}")
                continue
            if call.reads_trace and not (case.empty or not case.recoverable):
                out.append(f"{what}: exit 1 though the valid remainder is readable: {errors[0][:300]}")
                continue
            if call.reads_trace and case.empty and "no spans" not in errors[0] and str(trace_file) not in errors[0]:
                out.append(f"{what}: the error names neither the file nor the lack of spans: {errors[0][:300]}")
            continue
        # exit 0: the valid remainder, and the warning when one is due
        if call.reads_trace and case.empty:
            if case.warn or not _says_nothing(call):
                out.append(f"{what}: exit 0 on a trace with nothing valid in it: {call.stdout[:200]!r}")
            continue
        text = call.stdout + call.stderr
        if case.warn and call.reads_trace and _should_warn(case, call) and case.warn.lower() not in text.lower():
            out.append(f"{what}: no warning mentioning {case.warn!r}: {call.stderr[-300:]!r}")
        shows_all = call.label != "show" or _show_all(case)
        for name in (
            case.keep if call.reads_trace and call.label not in ("show-json", "push-live") and shows_all else ()
        ):
            if name not in call.stdout:
                out.append(f"{what}: the valid span {name!r} is missing from the output")
        if case.spans is not None and call.label == "export-otlp":
            found = _exported_spans(call.stdout)
            if found != case.spans:
                out.append(f"{what}: {found} spans exported, expected {case.spans}")
        if case.spans is not None and call.label == "push-live" and f"sent {case.spans} spans" not in call.stderr:
            out.append(f"{what}: expected 'sent {case.spans} spans': {call.stderr[-300:]!r}")
    return out


def _show_all(case: Case) -> bool:
    return case.spans is None or case.spans <= SHOW_ALL_UP_TO


def _should_warn(case: Case, call: Call) -> bool:
    if call.label.startswith("span-diff"):
        return case.diff_sees and not (case.in_index and call.label == "span-diff-files")
    return True


def _says_nothing(call: Call) -> bool:
    """An answer to an empty trace that claims no span: "no spans", or an export of none."""
    if "no spans" in call.stdout or "no spans" in call.stderr:
        return True
    if call.label == "export-otlp":
        return _exported_spans(call.stdout) == 0
    if call.label == "export-chrome":
        try:
            return json.loads(call.stdout)["traceEvents"] == []
        except (ValueError, KeyError):
            return False
    return call.label == "show-json" and json.loads(call.stdout or "{}").get("spans") == 0


def _exported_spans(text: str) -> int | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return sum(len(s["spans"]) for b in data["resourceSpans"] for s in b["scopeSpans"])


# ------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[str, str]]:
    server, stop = started_receiver()
    try:
        yield server.endpoint, dead_endpoint()
    finally:
        stop()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_reader_survives(case: Case, tmp_path: Path, endpoints: tuple[str, str]) -> None:
    live, dead = endpoints
    done = run_case(case, tmp_path, live, dead, code_env(), TIMEOUT_S)
    found = problems(case, done, tmp_path / "store" / "traces" / f"{T}.jsonl")
    assert not found, "\n".join(found)


def test_corpus_covers_the_issue() -> None:
    names = {c.name for c in CASES}
    assert len(CASES) >= 31
    for kind in ("json-nested-100000", "chain-1000", "chain-5000", "chain-100000", "self-parent", "parent-cycle"):
        assert any(n.startswith(kind) for n in names), kind


def _reader(store: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    module = "otel_run.cli._trace" if tool == "otel-trace" else "otel_run.cli._diff"
    argv = [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())", "--store", str(store)]
    return subprocess.run([*argv, *args], env=code_env(), capture_output=True, text=True, timeout=TIMEOUT_S)


def test_the_output_for_a_deep_chain_grows_linearly(tmp_path: Path) -> None:
    """span-diff on a 5,000-deep chain printed 79 MB in 60 s (every path holds
    its whole chain of names); the waterfall's indentation grew with the
    depth. Both are bounded now: the output grows with the spans, not with
    spans × depth."""
    sizes: dict[tuple[int, str], int] = {}
    for depth in (1000, 5000):
        store, trace_file = build(Case(f"chain-{depth}", chain(depth)), tmp_path / str(depth))
        for fmt in ("text", "md", "json", "html"):
            done = _reader(store, "span-diff", str(trace_file), str(trace_file), "--all", "--format", fmt)
            assert done.returncode == 0 and TRACEBACK not in done.stderr, done.stderr[-500:]
            sizes[depth, fmt] = len(done.stdout.encode())
        shown = _reader(store, "otel-trace", "show", "--all")
        assert shown.returncode == 0, shown.stderr[-500:]
        sizes[depth, "show"] = len(shown.stdout.encode())
        assert "levels deep" in shown.stdout
    for what in ("text", "md", "json", "html", "show"):
        # 5x the spans: at most 5x the output (linear), with room for the numbers' widths
        assert sizes[5000, what] <= 5.5 * sizes[1000, what], (what, sizes[1000, what], sizes[5000, what])
    assert max(sizes[5000, f] for f in ("text", "md", "json", "html")) < 1_000_000, sizes


def test_otel_trace_and_span_diff_read_the_same_spans(tmp_path: Path) -> None:
    """One validator: span ids otel-trace rejects ("zz", "0x…", non-ASCII
    digits) span-diff rejects too, and ids written in capitals are one tree in
    both (span-diff took "zz" and kept ids as written)."""
    bad = [
        bad_span(span_id="zz", name="zz"),
        bad_span(span_id="0x0123456789abcd", name="hex prefix"),
        bad_span(span_id="١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦", name="arabic digits"),
        bad_span(span_id="e5e5e5e5e5e5e5e5", parent=STEP.upper(), name="under step"),
    ]
    store, trace_file = build(Case("ids", [line(request([*base(), *bad]))]), tmp_path)
    exported = json.loads(_reader(store, "otel-trace", "export").stdout)
    names = {s["name"] for b in exported["resourceSpans"] for sc in b["scopeSpans"] for s in sc["spans"]}
    assert names == {"otel-run job", "work", "step", "under step"}
    for side in (str(trace_file), f"runs:{RUN}"):
        done = _reader(store, "span-diff", side, side, "--all", "--format", "json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert {r["name"] for r in data["rows"]} == {"(root)", "work", "step", "under step"}
        assert {r["path"] for r in data["rows"] if r["name"] == "under step"} == {"(root) > work > step > under step"}
        said = [w for w in data["warnings"] if "is neither 16 hex digits nor base64" in w]
        assert len(said) == 6 and all(str(trace_file) in w and "spanId" in w for w in said)  # 3 ids, 2 sides
        assert data["before"]["spans"] == 4


def test_duplicate_span_ids_are_reported_and_kept_apart(tmp_path: Path) -> None:
    """Two different spans with one id were merged into one span, silently."""
    impostor = span(WORK, ROOT, "impostor", T0 + 70 * MS, T0 + 90 * MS)
    store, trace_file = build(Case("dup", [line(request([*base(), impostor]))]), tmp_path)
    done = _reader(store, "otel-trace", "export")
    assert done.returncode == 0
    spans = [s for b in json.loads(done.stdout)["resourceSpans"] for sc in b["scopeSpans"] for s in sc["spans"]]
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"otel-run job", "work", "step", "impostor"}
    assert by_name["step"]["parentSpanId"] == WORK == by_name["work"]["spanId"]
    assert by_name["impostor"]["spanId"] != WORK
    assert {"key": "otel_run.duplicate_of", "value": {"stringValue": WORK}} in by_name["impostor"]["attributes"]
    [warning] = [ln for ln in done.stderr.splitlines() if "duplicate span id" in ln]
    assert str(trace_file) in warning and WORK in warning and "'impostor'" in warning
    diffed = json.loads(_reader(store, "span-diff", str(trace_file), str(trace_file), "--format", "json").stdout)
    assert {r["name"] for r in diffed["rows"]} >= {"work", "step", "impostor"}
    assert any("duplicate span id" in w for w in diffed["warnings"])
