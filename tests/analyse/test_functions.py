from __future__ import annotations

import random
from pathlib import Path

import pytest

from otel_run.analyse._functions import ALLOCATED, FunctionSide, diff_functions, function_values, load_functions
from otel_run.analyse._paths import ROOT
from otel_run.analyse._profile import BASE, BYTES, COUNT, SELF, TOTAL, RunProfile
from otel_run.analyse._sides import Side, SideError
from otel_run.store._profiles import Frame, ProcessProfile, Sample, profile_dir, write_profile
from otel_run.store._store import Store

FRAMES = [
    Frame("<module>", "/src/app/main.py", 1),
    Frame("walrus_slow", "/src/app/main.py", 5),
    Frame("steady", "/src/app/lib.py", 9),
]
SLOW, STEADY = "walrus_slow (app/main.py)", "steady (app/lib.py)"
MS = 1_000_000


def _process(*samples: Sample) -> ProcessProfile:
    process = ProcessProfile("mem")
    process.frames = list(FRAMES)
    process.samples = list(samples)
    return process


def _cpu(stack: tuple[int, ...], ms: int, idle: bool = False) -> Sample:
    return Sample("cpu", "a" * 16, 1, stack, ms // 10, ms * MS, idle)


def _run(run_id: str, walrus_ms: int, steady_ms: int, allocated: int | None = None) -> RunProfile:
    samples = [_cpu((0, 1), walrus_ms), _cpu((0, 2), steady_ms)]
    if allocated is not None:
        samples.append(Sample("memory", "a" * 16, 1, (0, 1), 3, allocated, False))
    profile = RunProfile(run_id, "test")
    profile.paths, _, _ = function_values([_process(*samples)])
    profile.wall_ns = (walrus_ms + steady_ms) * MS
    return profile


def test_self_time_is_the_leaf_s_non_idle_cpu_and_the_root_is_the_whole_run() -> None:
    values, cpu, memory = function_values(
        [
            _process(_cpu((0, 1), 600), _cpu((0, 1, 2), 300), _cpu((0,), 40, idle=True)),
            _process(_cpu((0, 2), 100), Sample("memory", "b" * 16, 2, (0, 2), 7, 4096, False)),
        ]
    )
    assert cpu and memory
    assert values[SLOW][SELF] == values[SLOW][TOTAL] == 600 * MS and values[SLOW][COUNT] == 60
    assert values[STEADY][SELF] == 400 * MS  # leaf of two stacks, two processes
    assert values[STEADY][BYTES] == values[STEADY][BASE] == 4096
    assert "<module> (app/main.py)" not in values  # never a leaf outside idle samples
    assert values[ROOT][SELF] == 1000 * MS and values[ROOT][BASE] == 4096  # the idle 40 ms left out


def test_a_4x_faster_function_is_significant_and_an_unchanged_one_is_not() -> None:
    rng = random.Random(7)

    def noisy(ms: int) -> int:
        return round(ms * rng.uniform(0.9, 1.1))

    before = [_run(f"b{i}", noisy(600), noisy(300), 1000) for i in range(8)]
    after = [_run(f"a{i}", noisy(150), noisy(300), 1000) for i in range(8)]
    result = diff_functions(FunctionSide(before, True), FunctionSide(after, True), names=("x", "y"))
    assert result.subject == "function" and result.metrics == [ALLOCATED]
    rows = {r.path: r for r in result.rows}
    assert result.rows[0].path == ROOT and result.rows[1].path == SLOW  # ranked by the change of self time
    slow = rows[SLOW]
    assert slow.significant and slow.ci_high_ms < 0 and -80 < (slow.change_pct or 0) < -70
    assert not rows[STEADY].significant
    assert slow.metrics[ALLOCATED]["before_median"] == 1000 and not slow.metrics[ALLOCATED]["significant"]
    assert result.structural()["count_changed"] == [] and result.critical_path_changes() == {"joined": [], "left": []}


def test_a_function_missing_from_a_run_counts_zero_there() -> None:
    before = [_run(f"b{i}", 100 + i, 50) for i in range(5)]
    after = [_run(f"a{i}", 100 + i, 50) for i in range(5)]
    for profile in after:
        del profile.paths[STEADY]
    result = diff_functions(FunctionSide(before, False), FunctionSide(after, False))
    steady = next(r for r in result.rows if r.path == STEADY)
    assert steady.only_in == "before" and steady.after_ms == 0 and steady.significant
    assert [r.path for r in result.structural()["removed"]] == [STEADY] and result.metrics == []


def test_memory_on_one_side_only_is_not_compared_and_says_so() -> None:
    before = [_run(f"b{i}", 100, 50, 1000) for i in range(4)]
    after = [_run(f"a{i}", 100, 50) for i in range(4)]
    result = diff_functions(FunctionSide(before, True), FunctionSide(after, False))
    assert result.metrics == [] and any("only before has memory profiles" in w for w in result.warnings)


def _store_side(tmp_path: Path, profiled: int, plain: int) -> tuple[Store, Side, list[RunProfile]]:
    store = Store(str(tmp_path / "store"))
    side = Side("before", "mylabel")
    spans = []
    for i in range(profiled + plain):
        trace_id, run_id = f"{i:032x}", f"{i:016x}"
        side.jobs.append(("store", store.trace_path(trace_id), trace_id, "r" * 16, run_id))
        spans.append(RunProfile(run_id, store.trace_path(trace_id)))
        if i < profiled:
            directory = Path(profile_dir(store.root, trace_id))
            directory.mkdir(parents=True)
            write_profile(str(directory / "p.jsonl"), {"trace_id": trace_id}, list(FRAMES), [_cpu((0, 1), 100 + i)])
    return store, side, spans


def test_load_functions_reads_the_store_and_leaves_out_runs_without_a_profile(tmp_path: Path) -> None:
    store, side, spans = _store_side(tmp_path, profiled=3, plain=1)
    loaded = load_functions(side, spans, store)
    assert [p.paths[SLOW][SELF] / MS for p in loaded.profiles] == [100, 101, 102] and not loaded.memory
    assert any("1 run(s) without a CPU profile left out" in w for w in side.warnings)


def test_sides_without_profiles_are_an_error_naming_the_side(tmp_path: Path) -> None:
    store, side, spans = _store_side(tmp_path, profiled=0, plain=2)
    with pytest.raises(SideError, match=r"--functions: BEFORE \(mylabel\) has no CPU profiles \(record the runs"):
        load_functions(side, spans, store)
    files = Side("after", "traces.json")
    files.jobs = [("file", "traces.json")]
    with pytest.raises(SideError, match=r"AFTER \(traces.json\) has no CPU profiles \(OTLP files carry none"):
        load_functions(files, [RunProfile("t", "traces.json")], store)
