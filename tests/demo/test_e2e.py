"""The headline: ``otel-demo`` — ``codeflash optimize foo.py`` on the fixture,
under otel-run, against the reference backend and the replay LLM — one trace
through every layer, in the user's default store. Takes about a minute (real
codeflash, real pytest runs)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, user_without_store

pytest.importorskip("codeflash", reason="the demo extra (codeflash) is not installed")
pytest.importorskip("django", reason="the demo extra (django) is not installed")


def test_codeflash_optimize_is_one_trace_through_every_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from otel_run.analyse import _tree
    from otel_run.demo import _cli
    from otel_run.store._store import Store

    # a user who never set OTEL_RUN_STORE (issue 10): the demo gives codeflash a
    # scratch HOME, and the run must still land in this HOME's default store
    home = tmp_path / "home"
    home.mkdir()
    user_without_store(monkeypatch, home)

    drift: list[dict[str, Any]] = []
    real_optimize = _cli.optimize

    def optimize_then_read_the_contract(*args: Any, **kwargs: Any) -> tuple[int, str | None]:
        result = real_optimize(*args, **kwargs)
        with urllib.request.urlopen("http://127.0.0.1:8000/internal/contract", timeout=10) as response:
            drift.extend(json.load(response)["drift"])  # while the backend still runs
        return result

    monkeypatch.setattr(_cli, "optimize", optimize_then_read_the_contract)
    status = _cli.main(["--latency-scale", "0", "--looping-time", "1", "--llm-port", str(free_port())])
    output, errors = capfd.readouterr()

    # the contract: the pinned codeflash sent nothing the reference backend did not understand
    assert not drift, "codeflash sent requests the reference backend does not understand:\n" + "\n".join(
        f"  {d['endpoint']}: {d['kind']}: {d['detail']}" for d in drift
    )
    assert status == 0, output[-3000:] + errors[-2000:]
    assert "Optimization successful" in output and "Speedup ratio" in output

    store = Store(str(home / ".local" / "share" / "otel-run"))
    [run] = [r for r in store.runs() if r.label == "demo"]
    assert run.exit_code == 0
    assert {r.label for r in store.runs()} == {"demo", "backend", "replay-llm"}  # one store for every process
    # otel-demo's final `otel-trace show` found the run: its waterfall and the boundary ledger
    shown = output[output.rindex(f"trace {run.trace_id}") :]
    for title in ("waterfall", "processes", "HTTP round-trips", "server side", "LLM calls", "critical path"):
        assert f"\n{title}" in shown, title
    assert "otel-trace: error" not in errors and "otel-demo: error" not in errors, errors[-2000:]
    trace = store.load_trace(run.trace_id)
    summary = _tree.summary(trace, run.root_span_id)
    assert {s.trace_id for s in trace.spans} == {run.trace_id}
    assert trace.roots == [trace.by_id[run.root_span_id]], [r.name for r in trace.roots]  # every parent present

    codeflash = [s for s in trace.spans if s.is_process and s.service == "codeflash"]
    assert len(codeflash) == 1 and codeflash[0].parent is trace.by_id[run.root_span_id]
    assert [s for s in trace.spans if s.is_process and s.service == "pytest"], "no pytest subprocess"

    api = [s for s in trace.spans if s.name.startswith("aiservice POST /ai/")]
    assert {s.attributes["codeflash.api.endpoint"] for s in api} >= {"/ai/optimize", "/ai/testgen"}
    for span in api:
        assert span.attributes["http.request.body.size"] > 0 and span.attributes["http.response.body.size"] > 0
        children = {c.name for c in span.children}
        assert "serialize request" in children
        if span.attributes["codeflash.api.endpoint"] != "/ai/log_features":  # fire-and-forget: body never read
            assert "deserialize response" in children, span.attributes["codeflash.api.endpoint"]
        http = next(c for c in span.children if c.kind == 3)
        assert any(c.name == "connect" for c in http.children)  # Connection: close: a new connection every call

    servers = [s for s in trace.spans if s.kind == 2 and s.service == "codeflash-backend"]
    assert {s.name for s in servers} >= {"POST ai/optimize", "POST ai/testgen"}
    assert all(s.parent is not None and s.parent.service == "codeflash" for s in servers)
    genai = [s for s in trace.spans if s.kind == 3 and s.attributes.get("gen_ai.operation.name") == "chat"]
    assert genai and all(s.service == "codeflash-backend" for s in genai)
    for span in genai:  # the official openai-v2 instrumentation, GenAI semantic conventions
        assert span.attributes["gen_ai.request.model"] and span.attributes.get("gen_ai.usage.output_tokens")
    replayed = [s for s in trace.spans if s.kind == 2 and s.service == "llm-replay"]
    assert replayed and all(s.parent is not None and s.parent.service == "codeflash-backend" for s in replayed)
    assert all(any(c.attributes.get("gen_ai.provider.name") for c in s.children) for s in replayed)

    ledger = summary["boundaries"]
    optimize_row = next(r for r in ledger["round_trips"] if r["endpoint"] == "POST /ai/optimize")
    assert optimize_row["new_connections"] == optimize_row["calls"] and optimize_row["bytes_up"] > 0
    backend_row = next(r for r in ledger["servers"] if r["route"] == "POST ai/optimize")
    assert 0 < backend_row["llm_ms"] < backend_row["total_ms"]
    assert next(r for r in ledger["subprocesses"] if r["service"] == "pytest")["median_startup_ms"] > 0
    assert any(s.attributes.get("db.system") == "sqlite" for s in trace.spans)
    phases = {s.name for s in trace.spans if s.scope_name == "otel_run.instrument.codeflash"}
    assert phases >= {
        "codeflash.optimize",
        "codeflash.optimize_function",
        "codeflash.generate_tests",
        "codeflash.generate_candidates",
        "codeflash.baseline",
        "codeflash.run_tests",
    }
