"""The boundary ledger on a synthetic trace shaped like the codeflash vertical:
a CLI calling a backend twice (one new connection, one reused), the backend
calling an LLM server, and Python subprocesses with a start-up event."""

from __future__ import annotations

from typing import Any

import pytest

from otel_run.analyse._ledger import headline, ledger, llm_calls, round_trips, servers, subprocesses
from otel_run.store._model import SCOPE, Event, Resource, Span, Trace

T = "4bf92f3577b34da6a3ce929d0e0e4736"
MS = 1_000_000
CLI = Resource({"service.name": "codeflash", "process.pid": 10})
BACKEND = Resource({"service.name": "codeflash-backend", "process.pid": 20})
LLM = Resource({"service.name": "llm-replay", "process.pid": 30})
CLIENT, SERVER = 3, 2


def span(
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    resource: Resource,
    kind: int = 1,
    **attributes: Any,
) -> Span:
    return Span(
        T,
        span_id,
        parent,
        name,
        kind=kind,
        start_ns=int(start_ms * MS),
        end_ns=int(end_ms * MS),
        attributes=attributes,
        resource=resource,
    )


def api_call(prefix: str, parent: str, start: float, new_connection: bool) -> list[Span]:
    """One codeflash aiservice call: API span, serialize child, HTTP client span
    (with a connect child when the connection is new), deserialize child, and the
    backend's server span with an LLM call that reaches the LLM server."""
    http = {
        "http.request.method": "POST",
        "url.full": "http://localhost:8000/ai/optimize",
        "http.response.status_code": 200,
        "http.request.body.size": 1000,
        "http.response.body.size": 4000,
    }
    spans = [
        span(
            f"{prefix}api",
            parent,
            "aiservice POST /ai/optimize",
            start,
            start + 100,
            CLI,
            **{"codeflash.api.endpoint": "/ai/optimize"},
        ),
        span(f"{prefix}ser", f"{prefix}api", "serialize request", start, start + 2, CLI),
        span(f"{prefix}http", f"{prefix}api", "POST", start + 2, start + 97, CLI, kind=CLIENT, **http),
        span(f"{prefix}des", f"{prefix}api", "deserialize response", start + 97, start + 100, CLI),
        span(f"{prefix}srv", f"{prefix}http", "POST ai/optimize", start + 5, start + 95, BACKEND, kind=SERVER),
        span(f"{prefix}prm", f"{prefix}srv", "prompt.assemble", start + 6, start + 8, BACKEND),
        span(
            f"{prefix}gen",
            f"{prefix}srv",
            "chat gpt-4.1",
            start + 10,
            start + 80,
            BACKEND,
            kind=CLIENT,
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4.1",
                "gen_ai.usage.input_tokens": 300,
                "gen_ai.usage.output_tokens": 50,
            },
        ),
        span(f"{prefix}llm", f"{prefix}gen", "POST /v1/chat/completions", start + 12, start + 78, LLM, kind=SERVER),
        span(f"{prefix}row", f"{prefix}srv", "INSERT", start + 85, start + 90, BACKEND, **{"db.system": "sqlite"}),
    ]
    if new_connection:
        spans.append(span(f"{prefix}con", f"{prefix}http", "connect", start + 2, start + 4, CLI))
    return spans


def process(span_id: str, parent: str, service: str, start: float, end: float, startup: float | None) -> Span:
    s = span(span_id, parent, service, start, end, Resource({"service.name": service, "process.pid": hash(span_id)}))
    s.scope_name = SCOPE
    s.attributes["process.parent_pid"] = 10
    if startup is not None:
        s.events.append(Event("python.started", int((start + startup) * MS), {}))
    return s


@pytest.fixture
def trace() -> Trace:
    spans = [
        span("root", None, "codeflash optimize foo.py", 0, 1000, CLI),
        *api_call("a", "root", 100, new_connection=True),
        *api_call("b", "root", 300, new_connection=False),
        process("p1", "root", "pytest", 500, 600, startup=20),
        process("p2", "root", "pytest", 600, 700, startup=30),
        process("p3", "root", "pytest", 700, 800, startup=40),
        process("g1", "root", "git", 800, 805, startup=None),
    ]
    return Trace(T, spans)


def test_round_trips_count_calls_bytes_serialization_and_connections(trace: Trace) -> None:
    [row] = [r for r in round_trips(trace) if r["caller"] == "codeflash"]
    assert (row["endpoint"], row["server"], row["calls"], row["errors"]) == (
        "POST /ai/optimize",
        "localhost:8000",
        2,
        0,
    )
    assert (row["bytes_up"], row["bytes_down"]) == (2000, 8000)
    assert row["serialize_ms"] == pytest.approx(4) and row["deserialize_ms"] == pytest.approx(6)
    assert (row["new_connections"], row["reused_connections"]) == (1, 1)
    assert row["connect_ms"] == pytest.approx(2)
    assert row["total_ms"] == pytest.approx(190) and row["median_ms"] == pytest.approx(95)
    assert row["internet"] is False


def test_a_failed_call_and_an_internet_host_are_flagged() -> None:
    failed = span(
        "x",
        None,
        "GET",
        0,
        5,
        CLI,
        kind=CLIENT,
        **{
            "http.request.method": "GET",
            "url.full": "https://pypi.org/pypi/codeflash/json",
            "http.response.status_code": 503,
            "http.request.resend_count": 2,
        },
    )
    [row] = round_trips(Trace(T, [failed]))
    assert (row["endpoint"], row["server"], row["errors"], row["resends"], row["internet"]) == (
        "GET /pypi/codeflash/json",
        "pypi.org",
        1,
        2,
        True,
    )


def test_a_second_http_call_under_one_api_call_is_a_resend(trace: Trace) -> None:
    retry = span("aretry", "aapi", "POST", 150, 190, CLI, kind=CLIENT, **trace.by_id["ahttp"].attributes)
    [row] = [r for r in round_trips(Trace(T, [*trace.spans, retry])) if r["caller"] == "codeflash"]
    assert (row["calls"], row["resends"]) == (3, 1)


def test_id_like_path_segments_are_grouped() -> None:
    spans = [
        span(
            str(i),
            None,
            "GET",
            0,
            1,
            CLI,
            kind=CLIENT,
            **{"http.request.method": "GET", "url.full": f"http://h:1/runs/{run}/spans"},
        )
        for i, run in enumerate(("42", "7", "4bf92f3577b34da6"))
    ]
    [row] = round_trips(Trace(T, spans))
    assert row["endpoint"] == "GET /runs/:id/spans" and row["calls"] == 3


def test_server_time_splits_into_llm_stages_storage_and_overhead(trace: Trace) -> None:
    rows = {r["service"]: r for r in servers(trace)}
    backend = rows["codeflash-backend"]
    assert (backend["route"], backend["requests"], backend["llm_calls"]) == ("POST ai/optimize", 2, 2)
    assert backend["total_ms"] == pytest.approx(180) and backend["llm_ms"] == pytest.approx(140)
    assert backend["overhead_ms"] == pytest.approx(40)
    assert backend["prompt_ms"] == pytest.approx(4) and backend["db_ms"] == pytest.approx(10)
    # the LLM server's span, in its own process, is its own row, not part of the backend's stages
    assert rows["llm-replay"]["total_ms"] == pytest.approx(132)


def test_llm_calls_total_tokens_per_model(trace: Trace) -> None:
    [row] = llm_calls(trace)
    assert (row["service"], row["model"], row["calls"]) == ("codeflash-backend", "gpt-4.1", 2)
    assert (row["input_tokens"], row["output_tokens"]) == (600, 100)
    assert row["median_ttft_ms"] is None


def test_subprocesses_report_spawn_to_interpreter_ready(trace: Trace) -> None:
    rows = {r["service"]: r for r in subprocesses(trace)}
    assert rows["pytest"]["count"] == 3 and rows["pytest"]["python"] is True
    assert rows["pytest"]["median_startup_ms"] == pytest.approx(30)
    assert rows["pytest"]["total_startup_ms"] == pytest.approx(90)
    assert rows["git"]["python"] is False and rows["git"]["median_startup_ms"] is None


def test_headline_counts_only_the_servers_the_command_called(trace: Trace) -> None:
    line = headline(trace)
    assert "2 HTTP round-trips" in line and "1 new connections" in line
    # 180 ms of backend, not 180 + the 132 ms of the LLM server the backend waited on
    assert "server 0.18 s of which LLM 0.14 s" in line
    assert "3 Python processes paid 0.09 s in start-up" in line


def test_a_single_process_run_has_no_headline() -> None:
    assert headline(Trace(T, [span("root", None, "true", 0, 1, CLI)])) == ""


def test_ledger_is_plain_json_data(trace: Trace) -> None:
    import json

    data = ledger(trace)
    assert set(data) == {"round_trips", "servers", "llm", "subprocesses"}
    assert json.loads(json.dumps(data)) == data


def test_processes_by_service_count_parallel_time_once() -> None:
    worker = Resource({"service.name": "worker", "process.pid": 40})

    def proc(span_id: str, start_ms: float, end_ms: float) -> Span:
        made = span(span_id, None, span_id, start_ms, end_ms, worker, **{"process.parent_pid": 1})
        made.scope_name = SCOPE  # a process span is otel-run's
        return made

    # three workers: two side by side for 0..10 and 5..15, one alone at 20..30
    rows = subprocesses(Trace(T, [proc("a", 0, 10), proc("b", 5, 15), proc("c", 20, 30)]))
    [row] = rows
    assert row["count"] == 3 and row["wall_ms"] == 30
    assert row["busy_ms"] == 25 and row["max_concurrent"] == 2
    # one after another, touching: never two at once
    [row] = subprocesses(Trace(T, [proc("a", 0, 10), proc("b", 10, 20)]))
    assert row["busy_ms"] == 20 and row["max_concurrent"] == 1
