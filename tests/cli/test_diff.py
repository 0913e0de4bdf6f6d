from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, Runner
from tests.synth import Node, runs, write_runs

SPAN_DIFF = str(BIN / "span-diff")
REQUIRED = (
    "path",
    "before_median_ms",
    "after_median_ms",
    "change_pct",
    "p_value",
    "significant",
    "only_in",
    "count_before",
    "count_after",
)


def _tree(slow_ms: float = 10, calls: int = 3) -> Node:
    return Node(
        "app",
        service="app",
        self_ms=1,
        children=[
            Node("parse {tmp}/input", self_ms=2),
            Node("GET /items/{uuid}", self_ms=1, count=calls, kind=3, attributes={"http.response.body.size": 100}),
            Node("compute", self_ms=slow_ms),
        ],
    )


def span_diff(*args: str, runner: Runner | None = None) -> subprocess.CompletedProcess[str]:
    env = runner.env() if runner is not None else None
    return subprocess.run([SPAN_DIFF, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    write_runs(tmp_path / "before", runs(_tree(), 12, seed=1))
    write_runs(tmp_path / "after", runs(_tree(slow_ms=13, calls=5), 12, seed=2))
    return tmp_path / "before", tmp_path / "after"


def test_json_contract_and_findings(sides: tuple[Path, Path]) -> None:
    result = span_diff(str(sides[0]), str(sides[1]), "--format", "json", "--all")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for row in data["rows"]:
        assert set(REQUIRED) <= set(row)
    by_leaf = {r["name"]: r for r in data["rows"]}
    compute = by_leaf["compute"]
    assert compute["significant"] and 20 < compute["change_pct"] < 40 and compute["only_in"] is None
    assert (by_leaf["GET /items/{uuid}"]["count_before"], by_leaf["GET /items/{uuid}"]["count_after"]) == (3, 5)
    assert data["structural"]["count_changed"][0]["count_after"] == 5
    assert data["rows"][0]["path"] == "(root)" and data["before"]["runs"] == 12
    root = data["root"]  # known truth: 16 ms -> 21 ms (+31%) under 5% noise, 12 runs a side
    assert root["significant"] and 20 < root["change_pct"] < 40 and root["p_value"] < 0.001


def test_markdown_html_and_text(sides: tuple[Path, Path], tmp_path: Path) -> None:
    md = span_diff(str(sides[0]), str(sides[1]), "--format", "md")
    assert md.returncode == 0 and "| path |" in md.stdout and "**+" in md.stdout and "count: " in md.stdout
    page = tmp_path / "diff.html"
    html = span_diff(str(sides[0]), str(sides[1]), "--format", "html", "-o", str(page))
    assert html.returncode == 0 and page.read_text().startswith("<!doctype html>")
    assert "<script" not in page.read_text()
    text = span_diff(str(sides[0]), str(sides[1]))
    assert text.returncode == 0 and "compute" in text.stdout


def test_fail_above_gates_on_significant_slowdowns(sides: tuple[Path, Path]) -> None:
    assert span_diff(str(sides[0]), str(sides[1]), "--fail-above", "10", "--format", "json").returncode == 3
    assert span_diff(str(sides[0]), str(sides[1]), "--fail-above", "90", "--format", "json").returncode == 0
    assert span_diff(str(sides[1]), str(sides[0]), "--fail-above", "5", "--format", "json").returncode == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "holds no spans"),
        (b"\x00\x81garbage\xff", "not OTLP JSON"),
        (b'{"data": [{"traceID": "abc", "spans": []}]}', "looks like Jaeger"),
        (b'[{"traceId": "abc", "id": "def", "name": "x"}]', "not OTLP JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab', "incomplete last line skipped"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(
    tmp_path: Path, sides: tuple[Path, Path], content: bytes, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    result = span_diff(str(bad), str(sides[1]))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert expected in result.stderr and "bad.json" in result.stderr, result.stderr


def test_missing_sides_and_labels(runner: Runner, sides: tuple[Path, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, expected in (
        (("no-such-label", str(sides[1])), "is not a file, a directory, a label or a run id"),
        ((str(empty), str(sides[1])), "holds no .json or .jsonl files"),
        (("label:nope", str(sides[1])), "no runs labelled 'nope'"),
        (("", str(sides[1])), "empty"),
        ((str(sides[0]), str(sides[1]), "--alpha", "2"), "must be between 0 and 1"),
        ((str(sides[0]), str(sides[1]), "--normalize", "("), "not a regular expression"),
    ):
        result = span_diff(*args, runner=runner)
        assert result.returncode in (1, 2), (args, result.stderr)
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_one_run_a_side_warns_and_still_reports(tmp_path: Path) -> None:
    write_runs(tmp_path / "a", runs(_tree(), 1, seed=1))
    write_runs(tmp_path / "b", runs(_tree(slow_ms=20), 1, seed=2))
    result = span_diff(str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert any("fewer than 4" in w for w in data["warnings"]) and not data["root"]["significant"]


def test_paired_compares_run_i_with_run_i_and_says_so(sides: tuple[Path, Path], tmp_path: Path) -> None:
    result = span_diff(str(sides[0]), str(sides[1]), "--paired", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["paired"] is True and data["test"].startswith("Wilcoxon signed-rank")
    assert data["root"]["significant"]  # 12 pairs, after slower in every one
    unpaired = json.loads(span_diff(str(sides[0]), str(sides[1]), "--format", "json").stdout)
    assert unpaired["paired"] is False and unpaired["test"].startswith("Mann-Whitney U")
    md = span_diff(str(sides[0]), str(sides[1]), "--paired", "--format", "md").stdout
    assert "Wilcoxon signed-rank of run i before vs run i after" in md
    write_runs(tmp_path / "short", runs(_tree(), 5, seed=3))
    uneven = span_diff(str(tmp_path / "short"), str(sides[1]), "--paired")
    assert uneven.returncode == 2
    assert uneven.stderr == (
        "span-diff: error: --paired: the sides have 5 and 12 runs; pairs need the same number "
        "(run i before with run i after, in the order they ran)\n"
    )
    few = span_diff(str(tmp_path / "short"), str(tmp_path / "short"), "--paired", "--format", "json")
    assert any("fewer than 6 pairs" in w for w in json.loads(few.stdout)["warnings"])


# One command for both series; SLOW=1 makes it sleep and start a subprocess.
SERIES = "import os, subprocess, time\nif os.environ.get('SLOW'):\n    time.sleep(0.2); subprocess.run(['true'])"


def test_runs_series_then_diff_by_label(runner: Runner) -> None:
    """Real ``otel-run --runs`` series compared by label. What is asserted of the
    real runs is behaviour: labels, warm-ups left out, the JSON contract, paths
    matched across series, a structural change found, exit codes. Whether a
    timing change is *significant* depends on the machine's noise, so that claim
    is made on synthesised traces with known truth (the tests above)."""
    py = str(BIN / "python")
    fast = runner.run("--runs", "5", "--warmup", "1", "-l", "fast", "--", py, "-c", SERIES)
    assert fast.returncode == 0, fast.stderr
    assert b"Time (mean" in fast.stderr and b"5 runs" in fast.stderr and fast.stdout == b""
    slow = runner.run("--runs", "5", "-l", "slow", "--", py, "-c", SERIES, env=runner.env(SLOW="1"))
    assert slow.returncode == 0, slow.stderr
    failing = runner.run(
        "--runs", "2", "-l", "bad", "--", py, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(4)"
    )
    assert failing.returncode == 4 and b"FAILED (exit 4)" in failing.stderr and b"| boom" in failing.stderr
    result = span_diff("fast", "slow", "--format", "json", "--all", runner=runner)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["before"]["runs"] == 5 and data["after"]["runs"] == 5  # the warm-up is not compared
    assert (data["before"]["name"], data["after"]["name"]) == ("fast", "slow")
    for row in data["rows"]:
        assert set(REQUIRED) <= set(row)
    by_name = {r["name"]: r for r in data["rows"]}
    [process] = [r for r in data["rows"] if r["depth"] == 1]  # the same command: one path, both series
    assert process["only_in"] is None and (process["count_before"], process["count_after"]) == (1, 1)
    assert process["runs_with_before"] == 5 and process["runs_with_after"] == 5
    assert process["after_median_ms"] >= 200  # every slow run slept 0.2 s: a lower bound, not a timing
    added = by_name["subprocess true"]
    assert added["only_in"] == "after" and (added["count_before"], added["count_after"]) == (0, 1)
    assert added["path"] in data["structural"]["added"]
    assert 0 <= data["root"]["p_value"] <= 1 and isinstance(data["root"]["significant"], bool)
    assert "no finished, successful runs" in span_diff("bad", "slow", runner=runner).stderr
    usage = runner.run("--runs", "0", "--", py, "-c", "pass")
    assert usage.returncode == 2 and b"--runs needs a whole number" in usage.stderr


def test_tempo_style_files_base64_ids_and_batches_match_hex_ones(tmp_path: Path) -> None:
    import base64

    def tempo(request: dict) -> dict:
        def b64(hex_id: str) -> str:
            return base64.b64encode(bytes.fromhex(hex_id)).decode()

        for batch in request["resourceSpans"]:
            for scope in batch["scopeSpans"]:
                for span in scope["spans"]:
                    span["traceId"], span["spanId"] = b64(span["traceId"]), b64(span["spanId"])
                    if "parentSpanId" in span:
                        span["parentSpanId"] = b64(span["parentSpanId"])
        return {"batches": request["resourceSpans"]}

    write_runs(tmp_path / "hex", runs(_tree(), 6, seed=1))
    write_runs(tmp_path / "tempo", [tempo(r) for r in runs(_tree(), 6, seed=1)])
    result = span_diff(str(tmp_path / "hex"), str(tmp_path / "tempo"), "--format", "json", "--all")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert all(r["only_in"] is None and r["change_pct"] == 0 for r in data["rows"]), data["rows"]


def test_metric_compares_a_numeric_attribute_per_path(sides: tuple[Path, Path]) -> None:
    result = span_diff(str(sides[0]), str(sides[1]), "--format", "json", "--all", "--metric", "http.response.body.size")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    metric = rows["GET /items/{uuid}"]["metrics"]["http.response.body.size"]
    assert (metric["before_median"], metric["after_median"]) == (300, 500)  # 3 -> 5 calls of 100 B
    assert metric["significant"] and metric["change_pct"] == pytest.approx(66.6667, rel=1e-3)
    assert "http.response.body.size" not in rows["compute"]["metrics"]


# Two functions that spin (CPU, not sleep: a sleeping frame is idle) for SLOW_S and 0.3 s.
SPINNER = """import os, time
def walrus_slow():
    end = time.perf_counter() + float(os.environ["SLOW_S"])
    while time.perf_counter() < end:
        pass
def steady():
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
walrus_slow()
steady()
"""


def _span_diff_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """span-diff in this process (so the code under test is this checkout's, whatever the venv points at)."""
    from otel_run.cli._diff import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_functions_compares_self_time_per_function_of_profiled_runs(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real ``otel-run --profile cpu`` series, walrus_slow made 4x faster. A
    4x change (0.6 s -> 0.15 s of spinning: ~60 -> ~15 samples a run at
    100 Hz) separates the two series entirely even on a loaded machine, so its
    direction and significance are asserted; whether an unchanged function
    stays insignificant depends on the machine's noise, so only its presence is
    (test_functions.py makes that claim on known data)."""
    program = tmp_path / "prog.py"
    program.write_text(SPINNER)
    py = str(BIN / "python")
    for label, slow in (("before", "0.6"), ("after", "0.15")):
        series = runner.run(
            "--profile", "cpu", "--runs", "5", "-l", label, "--", py, str(program), env=runner.env(SLOW_S=slow)
        )
        assert series.returncode == 0, series.stderr
    store = ("--store", str(runner.store))
    code, out, err = _span_diff_here(capsys, "before", "after", "--functions", "--format", "json", "--all", *store)
    assert code == 0, err
    data = json.loads(out)
    assert data["subject"] == "function" and data["before"]["runs"] == data["after"]["runs"] == 5
    for row in data["rows"]:
        assert set(REQUIRED) <= set(row)
    rows = {r["name"].split(" ")[0]: r for r in data["rows"]}
    slow = rows["walrus_slow"]
    assert slow["name"] == "walrus_slow (prog.py)" or slow["name"].endswith("/prog.py)")
    assert slow["significant"] and slow["change_ms"] < 0 and slow["ci_high_ms"] < 0, slow
    assert slow["count_before"] > slow["count_after"]  # samples
    assert "steady" in rows and rows["steady"]["only_in"] is None
    assert data["rows"][0]["path"] == "(root)" and data["structural"]["count_changed"] == []
    # the other formats render the same rows; the gate reads them too
    code, out, _ = _span_diff_here(capsys, "before", "after", "--functions", "--format", "md", *store)
    assert code == 0 and "| function | samples |" in out and "walrus_slow" in out
    code, out, _ = _span_diff_here(capsys, "before", "after", "--functions", *store)
    assert code == 0 and "cpu time (all functions)" in out and "walrus_slow" in out
    page = tmp_path / "functions.html"
    code, _, _ = _span_diff_here(capsys, "before", "after", "--functions", "--format", "html", "-o", str(page), *store)
    assert code == 0 and "walrus_slow" in page.read_text()
    code, _, err = _span_diff_here(capsys, "after", "before", "--functions", "--fail-above", "50", *store)
    assert code == 3 and "function(s) significantly slower" in err and "walrus_slow" in err


def test_functions_without_profiles_is_one_line_and_exit_1(
    runner: Runner, sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plain = runner.run("--runs", "1", "-l", "plain", "--", str(BIN / "python"), "-c", "pass")
    assert plain.returncode == 0, plain.stderr
    store = ("--store", str(runner.store))
    for args, expected in (
        ((str(sides[0]), "plain"), "--functions: BEFORE (" + str(sides[0]) + ") has no CPU profiles (OTLP files"),
        (
            ("plain", str(sides[1])),
            "--functions: BEFORE (plain) has no CPU profiles (record the runs with otel-run --profile cpu)",
        ),
        ((str(sides[0]), str(sides[1]), "--metric", "x"), "--metric compares span attributes"),
    ):
        code, out, err = _span_diff_here(capsys, *args, "--functions", *store)
        assert code in (1, 2) and out == "", (args, err)
        assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
