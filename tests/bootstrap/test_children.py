"""The hooks on children: the environment a child inherits."""

from __future__ import annotations

import os
from pathlib import Path

from otel_run.bootstrap import _children
from tests.conftest import PYTHON, PYTHON_NAME, Runner, one


def test_with_site_dir_is_first_and_once() -> None:
    path = _children.with_site_dir(f"/a:{_children.SITE_DIR}:/b")
    assert path.split(":") == [_children.SITE_DIR, "/a", "/b"]
    assert _children.with_site_dir(None) == _children.SITE_DIR


def test_execvp_through_a_long_path_ends_the_span_once(runner: Runner, tmp_path: Path) -> None:
    # os.execvp tries execv in each PATH directory: one exec record, not one per directory
    path = ":".join([*(str(tmp_path / f"missing{i}") for i in range(12)), os.environ["PATH"]])
    result = runner.run(PYTHON, "-c", "import os; os.execvp('true', ['true', 'x'])", env=runner.env(PATH=path))
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    python = one(trace, lambda s: s.is_process and s.name.startswith(PYTHON_NAME))
    assert [e.name for e in python.events].count("process.exec") == 1
    assert python.attributes["otel_run.exec.command_args"] == ["true", "x"]
    records = [line for line in trace_lines(runner) if f'"spanId":"{python.span_id}"' in line]
    assert len(records) <= 4, (
        records
    )  # the spawner's view of its start, its own start, its end at exec, the reaper's view


def test_a_failed_execvp_leaves_the_process_running_and_traced(runner: Runner) -> None:
    code = "import os, sys\ntry: os.execvp('no-such-command-x', ['x'])\nexcept FileNotFoundError: sys.exit(7)"
    result = runner.run(PYTHON, "-c", code)
    assert result.returncode == 7
    _, trace = runner.last()
    python = one(trace, lambda s: s.is_process and s.name.startswith(PYTHON_NAME))
    assert python.attributes["process.exit.code"] == 7
    assert "otel_run.exec.command_args" not in python.attributes
    assert "process.exec" not in [e.name for e in python.events]


def trace_lines(runner: Runner) -> list[str]:
    run, _ = runner.last()
    return (runner.store / "traces" / f"{run.trace_id}.jsonl").read_text().splitlines()
