"""``otel-trace serve``: a real OTLP/HTTP receiver process writing into a store."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run.store._store import Store
from tests.conftest import PYTHON, Runner, Serve, delivery_record, start_listening, wait_for

rotel = pytest.importorskip("rotel", reason="rotel (the OTLP collector used for interop) is not installed")
ROTEL_AGENT = Path(rotel.__file__).parent / "rotel-agent"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path / "home-store").start()
    yield server
    server.stop()


def _request(trace_id: str, span_id: str, name: str, parent: str | None = None) -> dict:
    span = {"traceId": trace_id, "spanId": span_id, "name": name, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    if parent:
        span["parentSpanId"] = parent
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "backend"}}]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}],
            }
        ]
    }


def _protobuf(trace_id: str, span_id: str, name: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    span = Span(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id), name=name)
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    return bytes(request.SerializeToString())


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_otel_run_to_rotel_to_otel_trace_serve_arrives_whole(runner: Runner, serve: Serve) -> None:
    collector, (_, http_port) = start_listening(
        lambda grpc_port, http_port: [
            str(ROTEL_AGENT), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", f"http://127.0.0.1:{serve.port}",
            "--otlp-exporter-protocol", "http",
            "--batch-timeout", "50ms",
        ],
        2,
        "rotel",
    )  # fmt: skip
    try:
        env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{http_port}")
        code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'])"
        result = runner.run(PYTHON, "-c", code, env=env, quiet=False)
        assert result.returncode == 0 and b"handed to the OTLP deliverer" in result.stderr, result.stderr
        run, local = runner.last()
        home = Store(str(serve.store))

        def arrived() -> bool:  # the spans, then the index entry written after them
            listed = any(r.trace_id == run.trace_id for r in home.runs())
            return listed and len(home.load_trace(run.trace_id).spans) >= len(local.spans)

        wait_for(arrived, timeout=60, what="spans and their index entry at home")
        received = home.load_trace(run.trace_id)
        assert set(received.by_id) == set(local.by_id)
        for span in local.spans:
            got = received.by_id[span.span_id]
            assert (got.name, got.parent_id, got.service) == (span.name, span.parent_id, span.service)
        [listed] = [r for r in home.runs() if r.trace_id == run.trace_id]
        assert listed.label == "received" and listed.root_span_id == run.root_span_id
    finally:
        collector.terminate()
        collector.wait(timeout=30)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"\x0a\xff\xff\xff\x0f", {"Content-Type": "application/x-protobuf"}, 400),  # truncated protobuf
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b'{"data": []}', {"Content-Type": "application/json"}, 400),  # Jaeger JSON
        (b"x", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415),
        (b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400),
        (b"GZIP-BOMB", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 413),
    ],
    ids=["content-type", "truncated-protobuf", "not-json", "jaeger-json", "encoding", "not-gzip", "gzip-bomb"],
)
def test_bad_requests_get_4xx_and_the_server_keeps_going(
    serve: Serve, body: bytes, headers: dict[str, str], status: int
) -> None:
    if body == b"GZIP-BOMB":
        body = gzip.compress(b"\0" * (200 * 1024 * 1024))  # 200 MiB of zeros in ~200 KiB
    got, answer = serve.post(body, headers)
    assert got == status, answer
    assert serve.alive()
    request = json.dumps(_request(TRACE, "00f067aa0ba902b7", "after")).encode()
    assert serve.post(request, {"Content-Type": "application/json"})[0] == 200


def test_a_100_mb_body_is_refused_from_its_length_alone(serve: Serve) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", serve.port), timeout=30) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n")
        s.sendall(b"Content-Length: %d\r\n\r\n" % (100 * 1024 * 1024))
        s.sendall(b"\0" * 65536)  # the server answers without waiting for the rest
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert serve.alive()


def test_token_wrong_path_and_protobuf(tmp_path: Path) -> None:
    server = Serve(tmp_path / "store", token="s3cret").start()
    try:
        body = _protobuf(TRACE, "00f067aa0ba902b7", "pb")
        headers = {"Content-Type": "application/x-protobuf"}
        assert server.post(body, headers)[0] == 401
        assert server.post(body, {**headers, "Authorization": "Bearer nope"})[0] == 401
        assert server.post(body, {**headers, "Authorization": "Bearer s3cret"}, path="/v1/metrics")[0] == 404
        assert server.post(body, {**headers, "Authorization": "Bearer s3cret"}) == (200, b"")
        trace = Store(str(server.store)).load_trace(TRACE)
        assert [s.name for s in trace.spans] == ["pb"]
    finally:
        server.stop()


def test_no_accepted_span_is_lost_across_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "store"
    headers = {"Content-Type": "application/json"}
    first = Serve(store).start()
    for i in range(20):
        assert first.post(json.dumps(_request(TRACE, f"{i + 1:016x}", f"s{i}")).encode(), headers)[0] == 200
    first.stop()
    second = Serve(store).start()
    try:
        for i in range(20, 40):
            assert second.post(json.dumps(_request(TRACE, f"{i + 1:016x}", f"s{i}")).encode(), headers)[0] == 200
    finally:
        second.stop()
    trace = Store(str(store)).load_trace(TRACE)
    assert sorted(s.name for s in trace.spans) == sorted(f"s{i}" for i in range(40))
    assert len([r for r in Store(str(store)).runs() if r.trace_id == TRACE]) == 1  # one index entry per trace


def test_push_backfills_a_label_into_a_receiver_and_skips_what_was_sent(runner: Runner, serve: Serve) -> None:
    for label in ("nightly", "nightly", "other"):
        assert runner.run("-l", label, PYTHON, "-c", "pass").returncode == 0
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{serve.port}")
    first = runner.trace_cli("push", "--label", "nightly", "--unpushed", env=env)
    assert first.returncode == 0 and "2 of 2 runs sent" in first.stderr, first.stderr
    again = runner.trace_cli("push", "--label", "nightly", "--unpushed", env=env)
    assert "no runs match" in again.stderr
    sent = {r.trace_id for r in Store(str(runner.store)).runs() if r.label == "nightly"}
    home = Store(str(serve.store))
    assert {t for t in sent if home.load_trace(t).spans} == sent
    future = runner.trace_cli("push", "--since", "2999-01-01", env=env)
    assert "no runs match" in future.stderr
    bad = runner.trace_cli("push", "--since", "yesterday", env=env)
    assert bad.returncode == 2 and "--since 'yesterday'" in bad.stderr


def test_push_unpushed_alone_sends_every_run_not_sent_yet_and_records_it(runner: Runner, serve: Serve) -> None:
    for label in ("a", "b"):
        assert runner.run("-l", label, PYTHON, "-c", "pass").returncode == 0
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=serve.endpoint)
    first = runner.trace_cli("push", "--unpushed", env=env)
    assert first.returncode == 0 and "2 of 2 runs sent" in first.stderr, first.stderr
    assert "no runs match" in runner.trace_cli("push", "--unpushed", env=env).stderr
    runs = Store(str(runner.store)).runs()
    record = delivery_record(runner.store)
    assert [(x["run_id"], x["ok"], x["via"]) for x in record] == [(r.run_id, True, "otel-trace push") for r in runs]
    assert all(x["spans"] == 2 and serve.endpoint in x["endpoint"] for x in record)
    both = runner.trace_cli("push", runs[0].run_id, "--unpushed", env=env)
    assert both.returncode == 2 and "not both" in both.stderr


def test_json_of_older_and_newer_exporters_is_read_as_otlp(serve: Serve) -> None:
    """Base64 ids (protobuf's JSON mapping), ``instrumentationLibrarySpans``
    (OTLP before 0.15), and fields this schema does not know yet (ignored, as
    OTLP/JSON requires of a receiver)."""
    import base64

    b64 = {"traceId": base64.b64encode(bytes.fromhex(TRACE)).decode(), "spanId": base64.b64encode(b"\1" * 8).decode()}
    old = {"instrumentationLibrary": {"name": "old"}, "spans": [{**b64, "name": "legacy", "kind": 2, "future": 1}]}
    body = {"resourceSpans": [{"instrumentationLibrarySpans": [old], "futureField": {"x": [1]}}], "extra": True}
    status, answer = serve.post(json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 200, answer
    [got] = Store(str(serve.store)).load_trace(TRACE).spans
    assert (got.span_id, got.name, got.kind, got.scope_name) == ("01" * 8, "legacy", 2, "old")
    line = json.loads((serve.store / "traces" / f"{TRACE}.jsonl").read_text())
    assert line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE  # stored as hex
