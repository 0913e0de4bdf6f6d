"""``otel-trace serve`` under failure and hostile input (issue 12, part 4).

Each test drives a real ``otel-trace serve`` process over loopback; the full
disk is a real tmpfs, the crash a real SIGKILL. What is checked: a 200 means
every span of the batch is in the store and the store stays readable; every
bad request gets its 4xx (or 503 + ``Retry-After``), never a 500 or a
traceback; the server keeps serving.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_run.store._store import Store
from tests.conftest import OTEL_TRACE, PYTHON, Runner, clean_env, wait_for

JSON = {"Content-Type": "application/json"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "5bf92f3577b34da6a3ce929d0e0e4737"


class Server:
    """An ``otel-trace serve`` process on a port the kernel chose, its stderr
    in a file (a pipe nobody reads would block it once full)."""

    def __init__(self, store: Path, *args: str) -> None:
        self.store = store
        self.args = args
        self.log = store.parent / f"serve-{os.getpid()}-{id(self)}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with open(self.log, "wb") as err:
            argv = [OTEL_TRACE, "--store", str(self.store), "serve", "--port", "0", *self.args]
            self.proc = subprocess.Popen(argv, env=clean_env(), stderr=err)
        found: list[str] = []

        def listening() -> bool:
            assert self.proc is not None
            found[:] = re.findall(r"OTLP/HTTP on http://[^:]+:(\d+)/v1/traces", self.stderr())
            return bool(found) or self.proc.poll() is not None

        wait_for(listening, what="otel-trace serve to listen")
        assert found, f"otel-trace serve did not start: {self.stderr()!r}"
        self.port = int(found[0])
        return self

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def post(
        self, body: bytes, headers: dict[str, str] = JSON, path: str = "/v1/traces"
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    proc = Server(tmp_path / "store").start()
    yield proc
    proc.stop()
    assert_no_500_nor_traceback(proc)


def assert_no_500_nor_traceback(proc: Server) -> None:
    log = proc.stderr()
    assert "Traceback" not in log and "serve: 500" not in log, log[-3000:]


def span(trace_id: str, span_id: str, name: str = "s", parent: str | None = None, **extra: Any) -> dict[str, Any]:
    out = {"traceId": trace_id, "spanId": span_id, "name": name, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    if parent:
        out["parentSpanId"] = parent
    out.update(extra)
    return out


def request(*spans: dict[str, Any], service: str = "backend") -> bytes:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}).encode()


def span_ids(store: Path, trace_id: str) -> set[str]:
    return set(Store(str(store)).load_trace(trace_id).by_id)


# ------------------------------------------------------- no acknowledged span is lost


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_answers_503_with_retry_after_and_no_acknowledged_span_is_lost(small_disk: Path) -> None:
    proc = Server(small_disk / "store").start()
    acked: set[str] = set()
    refused = 0
    payload = {"key": "payload", "value": {"stringValue": "x" * 3000}}
    try:
        for i in range(1000):  # until the disk has refused a few batches
            ids = (f"{2 * i + 1:016x}", f"{2 * i + 2:016x}")
            body = request(span(TRACE, ids[0], attributes=[payload]), span(OTHER, ids[1], attributes=[payload]))
            status, headers, answer = proc.post(body)
            if status == 200:
                acked.update(ids)
            else:
                assert status == 503 and int(headers["Retry-After"]) > 0, (status, answer)
                assert b"No space left on device" in answer, answer
                refused += 1
                if refused == 5:
                    break
        assert refused == 5, "the 256 KiB disk never filled up"
        subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
        after = {f"{0xF000 + i:016x}" for i in range(5)}
        for span_id in sorted(after):  # the space is back: batches are accepted again
            assert proc.post(request(span(TRACE, span_id, attributes=[payload])))[0] == 200
        assert proc.alive()
    finally:
        proc.stop()
    assert_no_500_nor_traceback(proc)
    stored = span_ids(small_disk / "store", TRACE) | span_ids(small_disk / "store", OTHER)
    assert acked | after <= stored, f"{len(acked | after - stored)} acknowledged spans lost"


def test_sigkill_loses_no_acknowledged_span(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = Server(store).start()
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        for n in range(100_000):
            if stop.is_set():
                return
            ids = [f"{worker:04x}{n:06x}{k:06x}" for k in range(20)]
            try:
                status = proc.post(request(*(span(TRACE, i, attributes=[]) for i in ids)))[0]
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            if status == 200:
                with lock:
                    acked.update(ids)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 1000, what="1,000 acknowledged spans")
        proc.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    with lock:
        before = set(acked)
    again = Server(store).start()  # the store takes more after the crash
    try:
        assert again.post(request(span(TRACE, "00000000000000ff")))[0] == 200
    finally:
        again.stop()
    stored = span_ids(store, TRACE)
    assert before | {"00000000000000ff"} <= stored, f"{len(before - stored)} acknowledged spans lost"
    [run] = [r for r in Store(str(store)).runs() if r.trace_id == TRACE]
    assert run.label == "received"


def test_200_concurrent_posts_are_all_accepted(server: Server) -> None:
    count = 200
    ready = threading.Barrier(count)
    statuses: list[int | str] = []

    def post(i: int) -> None:
        body = request(span(TRACE, f"{i + 1:016x}"))
        ready.wait()
        try:
            statuses.append(server.post(body)[0])
        except OSError as exc:
            statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert statuses == [200] * count, sorted(map(str, statuses))
    assert len(span_ids(server.store, TRACE)) == count


# ------------------------------------------------------- limits


def test_a_gzip_of_valid_json_over_the_decoded_limit_is_413(server: Server) -> None:
    spans = [span(TRACE, f"{i + 1:016x}", name="n" * 200) for i in range(16_000)]  # ~5 MiB of valid OTLP JSON
    body = gzip.compress(request(*spans))
    status, _, answer = server.post(body, {**JSON, "Content-Encoding": "gzip"})
    assert status == 413 and b"decompresses to more than" in answer, answer
    assert server.post(request(span(TRACE, "00000000000000aa")))[0] == 200


def test_too_many_spans_in_one_request_is_413(server: Server) -> None:
    body = request(*(span(TRACE, f"{i + 1:016x}", name="") for i in range(20_001)))  # ~2.5 MiB
    status, _, answer = server.post(body)
    assert status == 413 and b"spans" in answer, answer
    assert not Store(str(server.store)).load_trace(TRACE).spans


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (``tag``: field number << 3 | 2)."""
    length, varint = len(payload), bytearray()
    while True:
        varint.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            return bytes([tag]) + bytes(varint) + payload


@pytest.mark.parametrize(
    "shape",
    ["empty-spans", "empty-events", "empty-array-values"],
)
def test_a_protobuf_that_would_parse_into_millions_of_objects_is_413(server: Server, shape: str) -> None:
    ids = _field(0x0A, bytes.fromhex(TRACE)) + _field(0x12, b"\x01" * 8)
    filler = b"\x12\x00" * (2 * 1024 * 1024 - 16)  # 4 MiB of 2-byte fields
    if shape == "empty-spans":
        scope_spans = filler  # ScopeSpans.spans
    elif shape == "empty-events":
        scope_spans = _field(0x12, ids + filler.replace(b"\x12", b"\x5a"))  # Span.events
    else:  # Span.attributes[0] = KeyValue("k", AnyValue(array_value=ArrayValue(values=[AnyValue()] * N)))
        array = _field(0x2A, filler.replace(b"\x12", b"\x0a"))
        scope_spans = _field(0x12, ids + _field(0x4A, _field(0x0A, b"k") + _field(0x12, array)))
    body = gzip.compress(_field(0x0A, _field(0x12, scope_spans)))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    status, _, answer = server.post(body, headers)
    assert status == 413, answer
    assert server.post(request(span(TRACE, "00000000000000ab")))[0] == 200


def test_json_nested_100000_deep_is_400(server: Server) -> None:
    deep = b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, _, answer = server.post(deep)
    assert status == 400 and b"nested too deep" in answer, answer
    attrs = {"key": "k", "value": {"kvlistValue": {"values": []}}}
    inner = attrs["value"]["kvlistValue"]["values"]
    for _ in range(200):  # deeper than the protobuf schema allows, shallower than JSON's limit
        nested = {"key": "k", "value": {"kvlistValue": {"values": []}}}
        inner.append(nested)
        inner = nested["value"]["kvlistValue"]["values"]
    status, _, answer = server.post(request(span(TRACE, "00000000000000bb", attributes=[attrs])))
    assert status == 400, answer
    assert server.alive()


# ------------------------------------------------------- HTTP framing and time-outs


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/metrics", {}, 404),
        ("/v1/traces", {"Authorization": "Bearer nope"}, 401),
        ("/v1/traces", {"Content-Type": "text/plain"}, 415),
    ],
    ids=["404", "401", "415"],
)
def test_an_unread_body_is_never_taken_for_the_next_request(
    tmp_path: Path, path: str, headers: dict[str, str], status: int
) -> None:
    proc = Server(tmp_path / "store", "--token", "s3cret").start()
    try:
        smuggled = request(span(TRACE, "00000000000000cc"))
        inner = (
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
        )
        head = {"Host": "x", "Content-Type": "application/json", "Authorization": "Bearer s3cret", **headers}
        outer = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items())
        outer += f"Content-Length: {len(inner)}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as s:
            s.sendall(outer.encode() + inner)
            answers = b""
            while chunk := s.recv(65536):  # the server closes the connection after its one answer
                answers += chunk
        assert answers.startswith(b"HTTP/1.1 %d" % status), answers[:200]
        assert answers.count(b"HTTP/1.1 ") == 1, answers
        assert not Store(str(proc.store)).load_trace(TRACE).spans
        assert proc.post(request(span(TRACE, "00000000000000dd")), {**JSON, "Authorization": "Bearer s3cret"})[0] == 200
    finally:
        proc.stop()
    assert_no_500_nor_traceback(proc)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Transfer-Encoding: chunked\r\n", 411),
        (b"Content-Length: \xd9\xa1\xd9\xa2\r\n", 400),  # Arabic-Indic "12"
        (b"Content-Length: 2\r\nContent-Length: 3\r\n", 400),
        (b"", 411),
    ],
    ids=["chunked", "arabic-indic-length", "two-lengths", "no-length"],
)
def test_bad_framing_is_refused_and_the_connection_closed(server: Server, head: bytes, status: int) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head + b"\r\n{}")
        answers = b""
        while chunk := s.recv(65536):
            answers += chunk
    assert answers.startswith(b"HTTP/1.1 %d" % status) and answers.count(b"HTTP/1.1 ") == 1, answers[:300]


def test_idle_and_trickling_connections_are_closed_and_others_still_served(tmp_path: Path) -> None:
    proc = Server(tmp_path / "store", "--timeout", "1").start()
    try:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=120) as idle:
            assert idle.recv(100) == b""  # closed by the server, not by our 120 s
        with socket.create_connection(("127.0.0.1", proc.port), timeout=120) as slow:
            slow.sendall(b"POST /v1/traces HTTP/1.1\r\n")
            deadline = time.monotonic() + 120
            closed = False
            while not closed and time.monotonic() < deadline:  # a header byte every 0.2 s: never idle, never done
                try:
                    slow.sendall(b"X")
                    slow.settimeout(0.2)
                    closed = slow.recv(100) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
            assert closed, "a client trickling its headers kept its connection for 120 s"
        assert proc.post(request(span(TRACE, "00000000000000ee")))[0] == 200
    finally:
        proc.stop()
    assert_no_500_nor_traceback(proc)


def test_beyond_loopback_a_token_is_required_unless_no_token_says_otherwise(tmp_path: Path) -> None:
    argv = [OTEL_TRACE, "--store", str(tmp_path / "store"), "serve", "--host", "0.0.0.0", "--port", "0"]
    refused = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.splitlines()
    assert "--host 0.0.0.0" in line and "--token" in line and "--no-token" in line, line
    with_token = subprocess.run(
        [*argv, "--no-token", "--token", "t"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert with_token.returncode == 2 and "not both" in with_token.stderr
    proc = Server(tmp_path / "store", "--host", "0.0.0.0", "--no-token").start()
    try:
        assert proc.post(request(span(TRACE, "00000000000000ef")))[0] == 200
    finally:
        proc.stop()


# ------------------------------------------------------- what reaches the store


MALFORMED = {
    "0x": lambda n: "0x" + "a" * (n - 2),
    "leading-space": lambda n: " " + "a" * (n - 1),
    "trailing-newline": lambda n: "a" * (n - 1) + "\n",
    "arabic-indic": lambda n: "\u0661" * n,
    "short": lambda n: "a" * (n - 2),
    "all-zero": lambda n: "0" * n,
    "not-hex": lambda n: "g" * n,
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_ids_must_be_hex_of_the_right_length_after_decoding(server: Server, kind: str) -> None:
    malformed = MALFORMED[kind]
    status, _, answer = server.post(request(span(malformed(32), "00000000000000a1")))
    assert status == 400 and b"traceId" in answer, answer
    status, _, answer = server.post(request(span(TRACE, malformed(16))))
    assert status == 400 and b"spanId" in answer, answer
    status, _, answer = server.post(request(span(TRACE, "00000000000000a3", parent=malformed(16))))
    assert status == 400 and b"parentSpanId" in answer, answer
    assert os.listdir(server.store / "traces") == []
    assert server.post(request(span(TRACE.upper(), "00000000000000A2")))[0] == 200  # hex in upper case is hex
    assert os.listdir(server.store / "traces") == [f"{TRACE}.jsonl"]
    assert span_ids(server.store, TRACE) == {"00000000000000a2"}


@pytest.mark.parametrize(
    "bad",
    [
        {"attributes": [{"key": "n", "value": {"intValue": "abc"}}]},
        {"attributes": {"n": 1}},
        {"attributes": [{"key": "n", "value": "text"}]},
        {"attributes": [{"key": "n", "value": {"arrayValue": {"values": [{"intValue": []}]}}}]},
        {"startTimeUnixNano": "yesterday"},
        {"kind": "SPAN_KIND_NONSENSE"},
        {"status": {"code": "x"}},
        {"events": [{"timeUnixNano": "1", "attributes": {"a": 1}}]},
        {"name": {"a": 1}},
    ],
    ids=["int-not-a-number", "attrs-object", "value-string", "array-item", "time", "kind", "status", "event", "name"],
)
def test_a_span_of_the_wrong_type_is_refused_and_the_trace_stays_readable(server: Server, bad: dict[str, Any]) -> None:
    assert server.post(request(span(TRACE, "00000000000000b1")))[0] == 200
    status, _, answer = server.post(request(span(TRACE, "00000000000000b2", **bad)))
    assert status == 400 and b"not an OTLP trace request" in answer, answer
    assert span_ids(server.store, TRACE) == {"00000000000000b1"}  # readable, and nothing of the bad batch


def test_a_received_span_never_replaces_a_run_in_the_index(runner: Runner) -> None:
    assert runner.run(PYTHON, "-c", "pass").returncode == 0
    local, _ = runner.last()
    proc = Server(runner.store).start()
    try:
        # a root span whose id is the local run's id, in another trace
        assert proc.post(request(span(OTHER, local.run_id, name="impostor")))[0] == 200
        # a second received trace whose root has the first received trace's root id
        assert proc.post(request(span(TRACE, local.run_id, name="impostor2")))[0] == 200
    finally:
        proc.stop()
    runs = {r.trace_id: r for r in Store(str(runner.store)).runs()}
    assert set(runs) == {local.trace_id, OTHER, TRACE}
    mine = runs[local.trace_id]
    assert (mine.run_id, mine.command, mine.label) == (local.run_id, local.command, local.label)
    assert runs[OTHER].label == runs[TRACE].label == "received"
    assert runs[OTHER].command == ["backend: impostor"]
