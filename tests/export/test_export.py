"""OTLP JSON and Chrome trace exports of a real run."""

from __future__ import annotations

import json
from pathlib import Path

from otel_run.store._store import load_trace_file
from tests.conftest import PYTHON, Runner


def _run_tree(runner: Runner) -> None:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass']); subprocess.run(['true'])"
    assert runner.run("sh", "-c", f'{PYTHON} -c "{code}"').returncode == 0


def test_otlp_export_round_trips(runner: Runner, tmp_path: Path) -> None:
    _run_tree(runner)
    out = tmp_path / "trace.json"
    result = runner.trace_cli("export", "--format", "otlp", "-o", str(out))
    assert result.returncode == 0, result.stderr
    _, original = runner.last()
    data = json.loads(out.read_text())
    spans = [s for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)
    assert not any(a["key"] == "otel_run.record" for s in spans for a in s["attributes"])
    again = load_trace_file(str(out))
    assert {s.span_id: (s.parent_id, s.name, s.start_ns, s.end_ns) for s in again.spans} == {
        s.span_id: (s.parent_id, s.name, s.start_ns, s.end_ns) for s in original.spans
    }
    assert len({s["spanId"] for s in spans}) == len(spans)  # merged: one record per span


def test_chrome_export_for_perfetto(runner: Runner) -> None:
    _run_tree(runner)
    result = runner.trace_cli("export", "--format", "chrome")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    complete = [e for e in data["traceEvents"] if e["ph"] == "X"]
    _, trace = runner.last()
    assert len(complete) == len(trace.spans)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 and isinstance(e["pid"], int) for e in complete)
    names = {e["args"]["name"] for e in data["traceEvents"] if e["ph"] == "M"}
    assert any(n.startswith("sh (") for n in names) and any(n.startswith("true (") for n in names)
    starts = {e["id"] for e in data["traceEvents"] if e["ph"] == "s"}
    ends = {e["id"] for e in data["traceEvents"] if e["ph"] == "f"}
    assert starts and starts == ends  # spawn arrows across processes
