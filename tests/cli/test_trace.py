"""otel-trace list/show/export against real runs; bad input gives one line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PYTHON, Runner


def test_list_show_and_json(runner: Runner) -> None:
    runner.run("-l", "baseline", PYTHON, "-c", "import subprocess; subprocess.run(['true'])")
    runner.run(PYTHON, "-c", "import sys; sys.exit(2)")
    listed = runner.trace_cli("list", "--format", "json")
    runs = json.loads(listed.stdout)
    assert [r["exit_code"] for r in runs] == [0, 2]
    assert [
        r["run_id"] for r in json.loads(runner.trace_cli("list", "--label", "baseline", "--format", "json").stdout)
    ] == [runs[0]["run_id"]]
    text = runner.trace_cli("list")
    assert runs[0]["run_id"][:8] in text.stdout and "baseline" in text.stdout

    shown = runner.trace_cli("show", runs[0]["run_id"][:6])
    assert shown.returncode == 0, shown.stderr
    for section in ("waterfall", "processes", "critical path", "top self time", "subprocess true"):
        assert section in shown.stdout
    data = json.loads(runner.trace_cli("show", "--format", "json").stdout)
    assert data["run"]["exit_code"] == 2 and data["trace_id"] == runs[1]["trace_id"]
    assert data["processes"][0]["exit_code"] == 2
    assert data["critical_path"] and data["top_self_time"]


def test_bad_input_is_one_line_without_traceback(runner: Runner, tmp_path: Path) -> None:
    empty = runner.trace_cli("show")
    assert empty.returncode == 1 and empty.stderr.count("\n") == 1 and "no runs stored yet" in empty.stderr

    runner.run(PYTHON, "-c", "pass")
    unwritable = runner.trace_cli("export", "-o", str(tmp_path / "missing" / "x.json"))
    assert unwritable.returncode == 1 and "cannot write" in unwritable.stderr

    run, _ = runner.last()
    trace_file = runner.store / "traces" / f"{run.trace_id}.jsonl"
    trace_file.write_bytes(b"\x89PNG garbage\n" + trace_file.read_bytes())
    broken = runner.trace_cli("show")
    assert broken.returncode == 1
    assert broken.stderr.count("\n") == 1 and str(trace_file) in broken.stderr and "Traceback" not in broken.stderr

    unknown = runner.trace_cli("show", "nosuchrun")
    assert unknown.returncode == 1 and "no run or trace 'nosuchrun'" in unknown.stderr

    usage = runner.trace_cli("export", "--format", "zipkin")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "invalid choice" in usage.stderr


def test_push_without_endpoint_says_so(runner: Runner) -> None:
    runner.run(PYTHON, "-c", "pass")
    result = runner.trace_cli("push")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "otel-trace: error: no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT or pass --endpoint"
    )


def test_what_is_wrong_in_a_stored_run_is_said_and_the_rest_is_shown(runner: Runner) -> None:
    runner.run("-l", "kept", PYTHON, "-c", "pass")
    run, trace = runner.last()
    trace_file = runner.store / "traces" / f"{run.trace_id}.jsonl"
    hostile = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": run.trace_id, "spanId": "zz"}]}]}]}
    with trace_file.open("a") as f:
        f.write(json.dumps(hostile) + "\n")
    with (runner.store / "index.jsonl").open("a") as f:
        f.write(json.dumps({"run_id": 5}) + "\n" + json.dumps({"run_id": run.run_id, "start_ns": "soon"}) + "\n")

    listed = runner.trace_cli("list")
    assert listed.returncode == 0 and "kept" in listed.stdout
    assert "index.jsonl:3: index line without a run_id string (5): skipped" in listed.stderr
    assert "index.jsonl:4: index field start_ns 'soon' is not a time in nanoseconds: left out" in listed.stderr
    exported = runner.trace_cli("export")
    assert exported.returncode == 0 and "Traceback" not in exported.stderr
    spans = [s for b in json.loads(exported.stdout)["resourceSpans"] for sc in b["scopeSpans"] for s in sc["spans"]]
    assert len(spans) == len(trace.spans)
    assert f"otel-trace: warning: {trace_file}:" in exported.stderr and "spanId 'zz'" in exported.stderr


def test_a_trace_with_nothing_readable_is_an_error_not_no_spans(runner: Runner) -> None:
    runner.run(PYTHON, "-c", "pass")
    run, _ = runner.last()
    trace_file = runner.store / "traces" / f"{run.trace_id}.jsonl"
    trace_file.write_bytes(b'{"resourceSpans":[{"resource":\n')  # the only line, torn
    for command in (["show"], ["show", "--format", "json"], ["export"]):
        result = runner.trace_cli(*command)
        assert result.returncode == 1, (command, result.stdout)
        [error] = [line for line in result.stderr.splitlines() if line.startswith("otel-trace: error: ")]
        assert f"trace {run.trace_id}: no span could be read ({trace_file}:1: " in error
        assert "no spans stored" not in result.stdout
