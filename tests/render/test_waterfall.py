from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from otel_run.render._waterfall import MAX_INDENT, _ms, render
from otel_run.store._model import Resource, Span, Trace
from tests.conftest import OTEL_TRACE, PYTHON, Runner, wait_for

T = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_nested_run_shows_only_its_own_subtree() -> None:
    outer = Span(T, "o" * 16, None, "otel-run outer", start_ns=0, end_ns=100, attributes={"otel_run.run.id": "o"})
    inner = Span(T, "i" * 16, "o" * 16, "otel-run inner", start_ns=10, end_ns=90, attributes={"otel_run.run.id": "i"})
    leaf = Span(
        T,
        "l" * 16,
        "i" * 16,
        "work",
        start_ns=20,
        end_ns=80,
        resource=Resource({"service.name": "w"}),
        status_code=2,
        status_message="boom",
    )
    trace = Trace(T, [outer, inner, leaf])
    out = io.StringIO()

    class Run:
        run_id, root_span_id, label, git_commit, exit_code = "i" * 16, "i" * 16, "lbl", None, 1

    render(trace, Run(), Console(file=out, width=120, color_system=None))  # type: ignore[arg-type]
    text = out.getvalue()
    assert "otel-run inner" in text and "work" in text and "label lbl" in text
    assert "otel-run outer" not in text.split("processes")[0]  # the waterfall holds the inner run only
    assert "1 with errors" in text


def test_the_critical_path_has_one_row_per_span() -> None:
    # root waits on a, which waits on b in the middle: the path is root, a, b, a, root
    root = Span(T, "r" * 16, None, "root-span", start_ns=0, end_ns=100, attributes={"otel_run.run.id": "r"})
    a = Span(T, "a" * 16, "r" * 16, "a-span", start_ns=10, end_ns=90)
    b = Span(T, "b" * 16, "a" * 16, "b-span", start_ns=30, end_ns=60)
    out = io.StringIO()
    render(Trace(T, [root, a, b]), None, Console(file=out, width=120, color_system=None))
    critical = out.getvalue().split("critical path")[1].split("top self time")[0]
    assert [line.split()[0] for line in critical.strip().splitlines()[1:]] == ["root-span", "a-span", "b-span"]
    assert "50 ms" not in critical and "20.0%" in critical  # root: 10 + 10 ns of 100, merged


def _chain(depth: int) -> Trace:
    spans = [Span(T, "0", None, "root", start_ns=0, end_ns=10**9)]
    spans += [Span(T, str(i), str(i - 1), "level", start_ns=i, end_ns=10**9 - i) for i in range(1, depth + 1)]
    return Trace(T, spans)


def test_a_deep_tree_is_indented_so_far_and_then_numbered() -> None:
    """The waterfall recursed (RecursionError at about 1,000 levels) and each
    row's indentation grew with its depth (output quadratic in the depth)."""
    sizes = {}
    for depth in (1000, 5000):
        out = io.StringIO()
        render(_chain(depth), None, Console(file=out, width=120, color_system=None), max_rows=10**9)
        text = out.getvalue()
        rows = text.split("waterfall")[1].split("processes")[0].splitlines()[2:]
        assert len([r for r in rows if "└─ level" in r]) == depth
        assert max(len(r) for r in rows) <= 120
        assert f"[{depth}] └─ level" in text and f"the tree is {depth} levels deep" in text
        assert f"[{MAX_INDENT}]" not in text and f"[{MAX_INDENT + 1}] └─ level" in text
        sizes[depth] = len(text)
    assert sizes[5000] <= 5.5 * sizes[1000]


# ------------------------------------------------------- in a real terminal

WIDTHS = (80, 100)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux: run `sudo make tools` (or apt-get install tmux)")
def test_show_of_a_pytest_xdist_run_fits_80_and_100_columns_without_a_cut_number(
    runner: Runner, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for i in range(4):
        (suite / f"test_{i}.py").write_text(f"def test_{i}():\n    assert sum(range({i} * 1000)) >= 0\n")
    pytest_run = runner.run(PYTHON, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider", str(suite))
    assert pytest_run.returncode == 0, pytest_run.stdout.decode()[-2000:]
    data = json.loads(runner.trace_cli("show", "--format", "json").stdout)
    workers = [p for p in data["processes"] if p["name"].startswith("pytest-xdist gw")]
    assert len(workers) == 2, [p["name"] for p in data["processes"]]
    for width in WIDTHS:
        screen = _tmux_screen(runner, width, tmp_path)
        lines = [line.rstrip() for line in screen.splitlines()]
        assert max(cell_len(line) for line in lines) <= width
        table = lines[lines.index("processes") + 2 :]
        for process in data["processes"]:
            [row] = [line for line in table if line.split()[:1] == [str(process["pid"])]]
            # every number of the row is whole: the wall time and the exit status at least
            assert _ms(process["wall_ms"] * 1e6) in row, (width, row)
            assert row.split()[-1] == str(process["exit_code"]), (width, row)
        assert "gw0" in screen and "gw1" in screen  # the workers are told apart


def _tmux_screen(runner: Runner, width: int, tmp_path: Path) -> str:
    """``otel-trace show`` in a detached tmux pane ``width`` columns wide, as the pane shows it."""
    session = f"otel-run-test-{width}-{os.getpid()}"
    done = tmp_path / f"done-{width}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in runner.env().items() if k in ("OTEL_RUN_STORE", "PATH"))
    command = f"env -u COLUMNS {env} {shlex.quote(OTEL_TRACE)} show; touch {shlex.quote(str(done))}; sleep 600"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", "400", command], check=True)
    try:
        wait_for(done.exists, 60, "otel-trace show in tmux")
        captured = subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", session],
            capture_output=True,
            text=True,
            check=True,
        )
        return captured.stdout.rstrip("\n")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
