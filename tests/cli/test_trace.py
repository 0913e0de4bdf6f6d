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
