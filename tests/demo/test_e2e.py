"""The headline: ``codeflash optimize foo.py`` on the fixture, under otel-run,
against the reference backend and the replay LLM — one trace through every
layer. Takes about a minute (real codeflash, real pytest runs)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import clean_env, free_port

pytest.importorskip("codeflash", reason="the demo extra (codeflash) is not installed")
pytest.importorskip("django", reason="the demo extra (django) is not installed")


def test_codeflash_optimize_is_one_trace_through_every_layer(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from otel_run.analyse import _tree
    from otel_run.demo._cli import _project, optimize, services
    from otel_run.store._store import Store

    environ = clean_env(OTEL_RUN_STORE=str(tmp_path / "store"))
    project = _project(None)
    with services(project, free_port(), 0.0, environ):
        code, run_id = optimize(project, "foo.py", 1.0, environ)
        with urllib.request.urlopen("http://127.0.0.1:8000/internal/contract", timeout=10) as response:
            drift = json.load(response)["drift"]
    output = capfd.readouterr().out

    # the contract: the pinned codeflash sent nothing the reference backend did not understand
    assert not drift, "codeflash sent requests the reference backend does not understand:\n" + "\n".join(
        f"  {d['endpoint']}: {d['kind']}: {d['detail']}" for d in drift
    )
    assert code == 0, output[-3000:]
    assert "Optimization successful" in output and "Speedup ratio" in output

    store = Store(str(tmp_path / "store"))
    assert run_id is not None
    run = store.find_run(run_id)
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
