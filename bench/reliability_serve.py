"""Peak memory of ``otel-trace serve`` under concurrent hostile requests, and 200 concurrent posts.

    .venv/bin/python bench/reliability_serve.py [--concurrent 4] [--json FILE]

For each kind of request below, a fresh ``otel-trace serve`` (a real process,
a store in a temporary directory) gets ``--concurrent`` copies of it at once
(one thread and one connection each); the server's peak RSS is its
``VmHWM`` in ``/proc/PID/status`` once they are answered. Every answer's
status is reported with the seconds until the last one came. The goal (issue
12): 4 concurrent hostile requests keep the server under 512 MiB, and each
gets a 4xx, never a 500.

Kinds: the issue's gzip of 120 MB of valid OTLP JSON; the JSON that costs the
most memory per byte (empty objects) and the protobuf that does (empty spans,
empty events, an array of empty values) at the decoded-size limit; JSON nested 100,000 deep; and, for
scale, about the largest honest request (13,000 spans with ten attributes each,
as protobuf) — which is accepted.

Then 200 concurrent posts of one span each (a barrier releases them together):
how many got a 200.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
OTEL_TRACE = str(BIN / "otel-trace")
MIB = 1024 * 1024
LIMIT = 4 * MIB  # the receiver's MAX_DECODED
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=4, help="copies of each hostile request sent at once")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    rows = []
    for name, make, headers in CASES:
        body = make()
        rows.append(_case(name, body, headers, args.concurrent))
        print(_row(rows[-1]), flush=True)
    concurrent = _concurrent_posts(200)
    print(f"\n200 concurrent posts: {concurrent['accepted']} accepted ({concurrent['statuses']})")
    print("\n| request | body | statuses | seconds | peak RSS |\n|---|---|---|---|---|\n" + "\n".join(map(_row, rows)))
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": rows, "concurrent_posts": concurrent}, indent=2) + "\n")
    return 0


# ------------------------------------------------------------------ requests


def _json_bomb() -> bytes:
    """The issue's: 120 MB of valid OTLP JSON, gzip-compressed."""
    one = json.dumps({"traceId": TRACE, "spanId": "00f067aa0ba902b7", "name": "x" * 100}).encode()
    count = 120_000_000 // (len(one) + 1)
    return gzip.compress(b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + b",".join([one] * count) + b"]}]}]}")


def _json_empty_objects() -> bytes:
    """Decoded size at the limit, all of it empty attribute objects (~25x in Python)."""
    head, tail = b'{"resourceSpans":[{"resource":{"attributes":[', b"{}]}}]}"
    return gzip.compress(head + b"{}," * ((LIMIT - len(head) - len(tail)) // 3) + tail)


def _json_deep() -> bytes:
    return b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _protobuf_empty_spans() -> bytes:
    """Decoded size at the limit, all of it empty spans (2 bytes each on the wire)."""
    spans = b"\x12\x00" * ((LIMIT - 16) // 2)  # ScopeSpans.spans
    return gzip.compress(_field(0x0A, _field(0x12, spans)))


def _protobuf_empty_events() -> bytes:
    """One valid span whose events, empty, fill the limit."""
    ids = _field(0x0A, bytes.fromhex(TRACE)) + _field(0x12, b"\x01" * 8)
    span = ids + b"\x5a\x00" * ((LIMIT - 64) // 2)  # Span.events
    return gzip.compress(_field(0x0A, _field(0x12, _field(0x12, span))))


def _protobuf_empty_array() -> bytes:
    """One valid span with one attribute: an array whose values, empty, fill
    the limit (nested values are not among the counted items)."""
    ids = _field(0x0A, bytes.fromhex(TRACE)) + _field(0x12, b"\x01" * 8)
    array = _field(0x2A, b"\x0a\x00" * ((LIMIT - 96) // 2))  # AnyValue.array_value of ArrayValue.values
    span = ids + _field(0x4A, _field(0x0A, b"k") + _field(0x12, array))  # Span.attributes: KeyValue(key, value)
    return gzip.compress(_field(0x0A, _field(0x12, _field(0x12, span))))


def _protobuf_honest() -> bytes:
    """13,000 spans of ten attributes each: about as many as fit the 4 MiB limit."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    attrs = [KeyValue(key=f"attribute.{i}", value=AnyValue(string_value="value")) for i in range(10)]
    spans = [
        Span(
            trace_id=bytes.fromhex(TRACE),
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=b"\x00" * 7 + b"\x01" if i else b"",
            name=f"span {i}",
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_000_001_000 + i,
            attributes=attrs,
        )
        for i in range(13_000)
    ]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    return bytes(request.SerializeToString())


JSON_GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
PROTOBUF_GZIP = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
CASES: list[tuple[str, Callable[[], bytes], dict[str, str]]] = [
    ("gzip of 120 MB of valid OTLP JSON", _json_bomb, JSON_GZIP),
    ("JSON: 4 MiB of empty objects", _json_empty_objects, JSON_GZIP),
    ("JSON nested 100,000 deep", _json_deep, {"Content-Type": "application/json"}),
    ("protobuf: 4 MiB of empty spans", _protobuf_empty_spans, PROTOBUF_GZIP),
    ("protobuf: a span with 4 MiB of empty events", _protobuf_empty_events, PROTOBUF_GZIP),
    ("protobuf: an attribute of 4 MiB of empty array values", _protobuf_empty_array, PROTOBUF_GZIP),
    ("honest: 13,000 spans x 10 attributes, protobuf", _protobuf_honest, {"Content-Type": "application/x-protobuf"}),
]


# ------------------------------------------------------------------ measuring


class _Server:
    def __init__(self, store: Path) -> None:
        self.log = store.parent / "serve.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen([OTEL_TRACE, "--store", str(store), "serve", "--port", "0"], stderr=err)
        deadline = time.monotonic() + 60
        while not (found := re.search(r"OTLP/HTTP on http://[^:]+:(\d+)/", self.log.read_text())):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"otel-trace serve did not start: {self.log.read_text()}")
            time.sleep(0.05)
        self.port = int(found.group(1))

    def peak_rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        return self.log.read_text(errors="replace")


def _post(port: int, body: bytes, headers: dict[str, str]) -> int | str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _together(count: int, send: Callable[[int], int | str]) -> tuple[list[int | str], float]:
    barrier = threading.Barrier(count)
    statuses: list[int | str] = [0] * count

    def one(i: int) -> None:
        barrier.wait()
        statuses[i] = send(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, time.monotonic() - started


def _case(name: str, body: bytes, headers: dict[str, str], concurrent: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server = _Server(Path(tmp) / "store")
        try:
            base = server.peak_rss_mib()
            statuses, seconds = _together(concurrent, lambda _: _post(server.port, body, headers))
            peak = server.peak_rss_mib()
        finally:
            log = server.stop()
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)}
    return {
        "request": name,
        "body_bytes": len(body),
        "statuses": counts,
        "seconds": round(seconds, 2),
        "idle_rss_mib": round(base, 1),
        "peak_rss_mib": round(peak, 1),
        "tracebacks": log.count("Traceback"),
    }


def _concurrent_posts(count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server = _Server(Path(tmp) / "store")
        try:

            def send(i: int) -> int | str:
                span = {"traceId": TRACE, "spanId": f"{i + 1:016x}", "name": "s"}
                body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
                return _post(server.port, body, {"Content-Type": "application/json"})

            statuses, seconds = _together(count, send)
        finally:
            server.stop()
    return {
        "posts": count,
        "accepted": statuses.count(200),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)},
        "seconds": round(seconds, 2),
    }


def _row(row: dict[str, object]) -> str:
    statuses = ", ".join(f"{n}x {s}" for s, n in row["statuses"].items())  # type: ignore[attr-defined]
    size = int(row["body_bytes"])  # type: ignore[call-overload]
    body = f"{size / MIB:.2f} MiB" if size >= MIB else f"{size / 1024:.0f} KiB"
    return f"| {row['request']} | {body} | {statuses} | {row['seconds']} | {row['peak_rss_mib']} MiB |"


if __name__ == "__main__":
    sys.exit(main())
