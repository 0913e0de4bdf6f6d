"""span-diff ``--functions``: before/after function by function, from the runs' profiles.

Each run recorded with ``otel-run --profile cpu`` (and ``memory``) has a
profile per process in the store (:mod:`otel_run.store._profiles`). Here each
run becomes a :class:`~otel_run.analyse._profile.RunProfile` whose "paths" are
function labels (``func (dir/file.py)``, :func:`otel_run.analyse._stacks.label`),
so that :func:`otel_run.analyse._diff.diff` compares them with the same
statistics as span paths, one value per run and side:

* a function's time is its **self time**: the CPU time of the non-idle samples
  whose innermost frame is that function, every process and thread of the run;
* with memory profiles on both sides, also the **bytes allocated** by the
  function itself (memory samples whose innermost frame it is), as a metric;
* the root row, ``(root)``, is the whole run: every non-idle CPU sample and
  every allocation;
* a run in which a function has no sample counts 0 for it.

The columns of a row keep their meaning where they have one: ``count`` is the
number of CPU samples, ``bytes`` the bytes allocated, and the time on the
critical path (which ranks the rows) is the self time itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from otel_run.analyse._diff import DiffResult, diff
from otel_run.analyse._paths import ROOT
from otel_run.analyse._profile import BASE, BYTES, COUNT, CRITICAL, SELF, TOTAL, RunProfile
from otel_run.analyse._sides import Side, SideError
from otel_run.analyse._stacks import label
from otel_run.store._profiles import ProcessProfile, profile_dir, profile_paths, raw_dir, read_profile
from otel_run.store._store import Store, StoreError

ALLOCATED = "allocated_bytes"
"""The metric holding a function's bytes allocated per run (with memory profiles on both sides)."""
_WIDTH = BASE + 1


class FunctionSide:
    """One side's runs as function profiles, and whether they carry memory samples."""

    def __init__(self, profiles: list[RunProfile], memory: bool) -> None:
        self.profiles = profiles
        self.memory = memory


def function_values(profiles: Sequence[ProcessProfile]) -> tuple[dict[str, list[float]], bool, bool]:
    """One run's processes reduced to per-function numbers (indexed as a
    span path's: :data:`TOTAL`, :data:`SELF`, :data:`COUNT`, :data:`BYTES`,
    :data:`CRITICAL`, and the bytes allocated at :data:`BASE`), the whole run
    under :data:`ROOT`; and whether the run had CPU samples and memory samples."""
    out: dict[str, list[float]] = {ROOT: [0.0] * _WIDTH}
    whole = out[ROOT]
    cpu = memory = False
    for process in profiles:
        labels = [label(f) for f in process.frames]
        for sample in process.samples:
            if sample.kind == "cpu":
                cpu = True
                if sample.idle or not sample.stack:
                    continue
                for stats in (_slot(out, labels[sample.stack[-1]]), whole):
                    stats[TOTAL] += sample.value
                    stats[SELF] += sample.value
                    stats[CRITICAL] += sample.value
                    stats[COUNT] += sample.number
            elif sample.kind == "memory":
                memory = True
                if not sample.stack:
                    continue
                for stats in (_slot(out, labels[sample.stack[-1]]), whole):
                    stats[BYTES] += sample.value
                    stats[BASE] += sample.value
    return out, cpu, memory


def load_functions(side: Side, spans: Sequence[RunProfile], store: Store) -> FunctionSide:
    """The function profiles of ``side``'s runs (``spans``: the same runs read
    by :func:`otel_run.analyse._sides.load`, whose summary each keeps).

    Raises :class:`SideError` when no run of the side has a CPU profile (OTLP
    files never do); runs without one are left out with a warning."""
    advice = "(record the runs with otel-run --profile cpu)"
    traces = {job[4]: job[2] for job in side.jobs if job[0] == "store"}
    if not traces:
        raise SideError(
            f"--functions: {side.label.upper()} ({side.spec}) has no CPU profiles (OTLP files carry none: "
            "compare labels or run ids of runs recorded with otel-run --profile cpu)"
        )
    out: list[RunProfile] = []
    without = 0
    memory = True
    for run in spans:
        trace_id = traces.get(run.run)
        if trace_id is None:
            without += 1
            continue
        _convert_pending(store, trace_id, side.warnings)
        processes = [read_profile(p) for p in profile_paths(store.root, trace_id)]
        side.warnings.extend(w for p in processes for w in p.warnings)
        values, cpu, has_memory = function_values(processes)
        if not cpu:
            without += 1
            continue
        memory = memory and has_memory
        profile = RunProfile(run.run, run.source)
        profile.paths = values
        profile.wall_ns, profile.spans, profile.errors, profile.root_name = (
            run.wall_ns,
            run.spans,
            run.errors,
            run.root_name,
        )
        out.append(profile)
    if not out:
        raise SideError(f"--functions: {side.label.upper()} ({side.spec}) has no CPU profiles {advice}")
    if without:
        side.warnings.append(f"{side.label}: {without} run(s) without a CPU profile left out {advice}")
    return FunctionSide(out, memory)


def diff_functions(
    before: FunctionSide,
    after: FunctionSide,
    *,
    alpha: float = 0.05,
    names: tuple[str, str] = ("before", "after"),
    paired: bool = False,
) -> DiffResult:
    """Compare two sides function by function (see the module docstring)."""
    memory = before.memory and after.memory
    metrics = [ALLOCATED] if memory else []
    result = diff(before.profiles, after.profiles, alpha=alpha, metrics=metrics, names=names, paired=paired)
    result.subject = "function"
    result.critical_before, result.critical_after = [], []  # every function "is" on it: no news
    if before.memory != after.memory:
        has = "before" if before.memory else "after"
        result.warnings.append(
            f"bytes allocated not compared: only {has} has memory profiles (otel-run --profile cpu,memory)"
        )
    return result


def _slot(values: dict[str, list[float]], key: str) -> list[float]:
    stats = values.get(key)
    if stats is None:
        stats = values[key] = [0.0] * _WIDTH
    return stats


def _convert_pending(store: Store, trace_id: str, warnings: list[str]) -> None:
    """Convert what the run's end left raw (as ``otel-trace profile`` does)."""
    try:
        metas = [n[: -len(".meta")] for n in os.listdir(raw_dir(store.root, trace_id)) if n.endswith(".meta")]
    except OSError:
        return
    done = profile_dir(store.root, trace_id)
    if all(os.path.exists(os.path.join(done, m + ".jsonl")) for m in metas):
        return
    from otel_run.analyse._attribute import convert

    try:
        trace = store.load_trace(trace_id)
    except StoreError as exc:
        warnings.append(f"profile of trace {trace_id} not converted: {exc}")
        return
    warnings.extend(convert(store.root, trace, wait_s=0))
