"""CodeflashInstrumentor against the pinned codeflash, in-process: its real
``AiServiceClient`` calling a real loopback HTTP server; version tolerance;
and that uninstrumenting gives codeflash back exactly what it had."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

pytest.importorskip("codeflash", reason="the demo extra (codeflash) is not installed")

from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_run.instrument import codeflash as instrumentation
from otel_run.instrument.codeflash import CodeflashInstrumentor


class _Backend(BaseHTTPRequestHandler):
    """Answers like the AI service: 200 with a JSON body, or 500 for /ai/fail."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, dict(self.headers), body))
        status = 500 if self.path == "/ai/fail" else 200
        answer = json.dumps({"optimizations": [{"source_code": "x" * 300}]} if status == 200 else {"error": "boom"})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Backend.received = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RequestsInstrumentor().instrument(tracer_provider=provider)
    CodeflashInstrumentor().instrument(tracer_provider=provider)
    yield exporter
    CodeflashInstrumentor().uninstrument()
    RequestsInstrumentor().uninstrument()


@pytest.fixture
def client(backend: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CODEFLASH_API_KEY", "cf-test-key-0123456789")
    from codeflash.api.aiservice import AiServiceClient

    client = AiServiceClient()
    client.base_url = backend
    return client


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def test_an_aiservice_call_is_a_span_with_sizes_and_serialization_children(
    exporter: InMemorySpanExporter, client: Any
) -> None:
    response = client.make_ai_service_request("/optimize", payload={"source_code": "def f(): pass", "n": 5})
    assert response.json()["optimizations"][0]["source_code"] == "x" * 300  # codeflash reads it as before

    spans = exporter.get_finished_spans()
    api = by_name(spans, "aiservice POST /ai/optimize")
    [(path, headers, body)] = _Backend.received
    assert path == "/ai/optimize" and headers["Connection"] == "close"
    assert api.attributes is not None
    assert api.attributes["codeflash.api.endpoint"] == "/ai/optimize"
    assert api.attributes["http.request.body.size"] == len(body)
    assert api.attributes["http.response.body.size"] == len(response.content)
    assert api.attributes["http.response.status_code"] == 200
    assert api.attributes["http.request.header.connection"] == ("close",)

    serialize, deserialize = by_name(spans, "serialize request"), by_name(spans, "deserialize response")
    http = next(s for s in spans if s.kind.name == "CLIENT")
    for child in (serialize, http, deserialize):
        assert child.parent is not None and child.parent.span_id == api.context.span_id
    assert serialize.attributes is not None and serialize.attributes["http.request.body.size"] == len(body)
    assert serialize.end_time <= http.start_time and http.end_time <= deserialize.start_time  # type: ignore[operator]


def test_an_error_status_marks_the_span_and_codeflash_gets_the_same_response(
    exporter: InMemorySpanExporter, client: Any
) -> None:
    response = client.make_ai_service_request("/fail", payload={})
    assert response.status_code == 500 and response.json() == {"error": "boom"}
    api = by_name(exporter.get_finished_spans(), "aiservice POST /ai/fail")
    assert api.status.status_code is StatusCode.ERROR


def test_the_phases_of_a_run_are_wrapped_and_behave_as_before(exporter: InMemorySpanExporter) -> None:
    from codeflash.languages.function_optimizer import FunctionOptimizer
    from codeflash.models.models import TestingMode

    wrapped = FunctionOptimizer.__dict__["run_and_parse_tests"]
    assert wrapped.__wrapped__ is not None and wrapped.__name__ == "run_and_parse_tests"
    args = (object(), TestingMode.BEHAVIOR, {}, None, 3)  # a self without state: codeflash raises
    with pytest.raises(Exception) as traced:
        wrapped(*args)
    with pytest.raises(Exception) as plain:
        wrapped.__wrapped__(*args)
    assert (type(traced.value), str(traced.value)) == (type(plain.value), str(plain.value))  # passes through as is
    span = by_name(exporter.get_finished_spans(), "codeflash.run_tests")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert (span.attributes["codeflash.testing_mode"], span.attributes["codeflash.candidate_index"]) == ("behavior", 3)


def test_a_wrap_point_that_moved_is_skipped_with_a_debug_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_RUN_DEBUG", "1")
    moved = (
        ("codeflash.api.aiservice", "AiServiceClient.renamed_in_a_later_version", "codeflash.gone"),
        ("codeflash.no_such_module", "Thing.run", "codeflash.gone_too"),
    )
    monkeypatch.setattr(instrumentation, "PHASES", moved + instrumentation.PHASES)
    from codeflash.api.aiservice import AiServiceClient

    original = AiServiceClient.make_ai_service_request
    CodeflashInstrumentor().instrument(tracer_provider=TracerProvider())
    try:
        assert AiServiceClient.make_ai_service_request is not original  # the rest is instrumented
        err = capsys.readouterr().err
        assert "AiServiceClient.renamed_in_a_later_version not found" in err
        assert "codeflash.no_such_module" not in sys.modules  # a module codeflash never imports is not imported
    finally:
        CodeflashInstrumentor().uninstrument()


def test_uninstrument_restores_codeflash_exactly() -> None:
    import codeflash.api.aiservice as aiservice
    import codeflash.api.cfapi as cfapi
    from codeflash.languages.function_optimizer import FunctionOptimizer

    before = (
        aiservice.AiServiceClient.__dict__["make_ai_service_request"],
        cfapi.make_cfapi_request,
        aiservice.json,
        FunctionOptimizer.__dict__["optimize_function"],
    )
    CodeflashInstrumentor().instrument(tracer_provider=TracerProvider())
    assert aiservice.json is not before[2] and cfapi.make_cfapi_request is not before[1]
    CodeflashInstrumentor().uninstrument()
    after = (
        aiservice.AiServiceClient.__dict__["make_ai_service_request"],
        cfapi.make_cfapi_request,
        aiservice.json,
        FunctionOptimizer.__dict__["optimize_function"],
    )
    assert after == before and aiservice.json is json


def test_it_is_registered_for_opentelemetry_instrument() -> None:
    from importlib.metadata import entry_points

    [entry] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "codeflash"]
    assert entry.load() is CodeflashInstrumentor


def test_stock_opentelemetry_instrument_loads_it(tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.conftest import BIN, clean_env

    tool = BIN / "opentelemetry-instrument"
    if not tool.exists():
        pytest.skip("opentelemetry-distro (the bench extra) is not installed")
    probe = (
        "import sys; early = 'codeflash.api.aiservice' in sys.modules;"  # it waits for codeflash, never imports it
        "import codeflash.api.aiservice as a;"
        "print(early, hasattr(a.AiServiceClient.__dict__['make_ai_service_request'], '__wrapped__'))"
    )
    env = clean_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    result = subprocess.run(
        [str(tool), sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "False True", result.stderr[-2000:]
