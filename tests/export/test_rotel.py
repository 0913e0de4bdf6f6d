"""OTLP export through a real third-party collector.

otel-run → rotel (a Rust OpenTelemetry collector, from PyPI) → a loopback
OTLP/HTTP receiver in this test that decodes the protobuf with
``opentelemetry-proto`` and checks the tree against the local store.
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import PYTHON, Runner, start_listening, wait_for, wait_for_record

rotel = pytest.importorskip("rotel", reason="rotel (the OTLP collector used for interop) is not installed")
ROTEL_AGENT = Path(rotel.__file__).parent / "rotel-agent"


class Received:
    """Spans the receiver decoded: span id -> (trace id, parent id, name, service)."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[str, str, str, str]] = {}
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()


@pytest.fixture
def receiver() -> Iterator[tuple[int, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            with received.lock:
                received.requests += 1
                received.headers.append({k.lower(): v for k, v in self.headers.items()})
                for rs in request.resource_spans:
                    service = next(
                        (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
                    )
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            received.spans[span.span_id.hex()] = (
                                span.trace_id.hex(),
                                span.parent_span_id.hex(),
                                span.name,
                                service,
                            )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


def start_rotel(receiver_port: int) -> tuple[subprocess.Popen[bytes], int, int]:
    """rotel exporting to ``receiver_port``; returns it, its gRPC and its HTTP port."""

    def argv(grpc_port: int, http_port: int) -> list[str]:
        return [
            str(ROTEL_AGENT),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            f"http://127.0.0.1:{receiver_port}",
            "--otlp-exporter-protocol",
            "http",
            "--batch-timeout",
            "50ms",
        ]

    proc, (grpc_port, http_port) = start_listening(argv, 2, "rotel")
    return proc, grpc_port, http_port


def _workload() -> list[str]:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass']); subprocess.run(['true'])"
    return ["sh", "-c", f'{PYTHON} -c "{code}"']


def _check_tree(runner: Runner, received: Received) -> None:
    run, trace = runner.last()
    wait_for(lambda: len(received.spans) >= len(trace.spans), timeout=60, what="spans at the receiver")
    assert set(received.spans) == set(trace.by_id)
    for span in trace.spans:
        trace_id, parent_id, name, service = received.spans[span.span_id]
        assert trace_id == run.trace_id
        assert parent_id == (span.parent_id or "")
        assert (name, service) == (span.name, span.service)
    roots = [sid for sid, (_, parent, _, _) in received.spans.items() if not parent]
    assert roots == [run.root_span_id]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otel_run_to_rotel_to_receiver(runner: Runner, receiver: tuple[int, Received], protocol: str) -> None:
    receiver_port, received = receiver
    collector, grpc_port, http_port = start_rotel(receiver_port)
    try:
        endpoint = f"http://127.0.0.1:{http_port if protocol != 'grpc' else grpc_port}"
        env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
        result = runner.run(*_workload(), env=env, quiet=False)
        assert result.returncode == 0, result.stderr
        assert b"handed to the OTLP deliverer" in result.stderr, result.stderr
        _check_tree(runner, received)
    finally:
        collector.terminate()
        collector.wait(timeout=30)


def test_unreachable_collector_loses_nothing_and_push_sends_later(
    runner: Runner, receiver: tuple[int, Received]
) -> None:
    receiver_port, received = receiver
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
        env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=unreachable, OTEL_RUN_EXPORT_TIMEOUT="2")
        result = runner.run(PYTHON, "-c", "import sys; sys.exit(5)", env=env, quiet=False)
    assert result.returncode == 5  # the run is unaffected
    run, trace = runner.last()
    assert len(trace.spans) == 2 and run.finished
    attempt = wait_for_record(runner.store, [run.run_id])[run.run_id]
    assert attempt["ok"] is False and unreachable in attempt["endpoint"], attempt
    assert not (runner.store / "pushed" / run.run_id).exists()

    collector, _, http_port = start_rotel(receiver_port)
    try:
        pushed = runner.trace_cli("push", env=runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{http_port}"))
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stderr.startswith("sent 2 spans to http://127.0.0.1:")
        _check_tree(runner, received)
        assert (runner.store / "pushed" / run.run_id).exists()
    finally:
        collector.terminate()
        collector.wait(timeout=30)


def test_standard_exporter_settings_apply(runner: Runner, receiver: tuple[int, Received]) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS (and the other standard settings) reach the official exporter."""
    receiver_port, received = receiver
    env = runner.env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{receiver_port}/v1/traces",
        OTEL_EXPORTER_OTLP_HEADERS="x-team=perf,authorization=Bearer%20t0ken-123",
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
    )
    result = runner.run(PYTHON, "-c", "pass", env=env, quiet=False)
    assert result.returncode == 0 and b"2 spans of run" in result.stderr, result.stderr
    _check_tree(runner, received)
    assert received.headers[-1]["x-team"] == "perf"
    assert received.headers[-1]["authorization"] == "Bearer t0ken-123"
    assert received.headers[-1]["content-encoding"] == "gzip"
