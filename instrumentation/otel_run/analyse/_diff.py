"""Before/after of two sets of runs, span path by span path.

Each run (one trace) is first reduced to a
:class:`~otel_run.analyse._profile.RunProfile` (per span path: total and self
time, count, bytes, critical-path time, metrics). Then :func:`diff` compares the two sides path by path:
medians, the change with its confidence interval and p-value
(:mod:`otel_run.analyse._stats`), paths found on one side only, count and
payload changes, and what the critical path gained or lost.

Rows are ranked by their **impact on the root's wall time**: the change in the
path's median time *on the critical path*. The critical path's pieces add up
to the root's duration, so a span that got slower in a parallel branch that
never waited on it ranks low, and the impacts of the rows roughly add up to
the root's change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from otel_run._errors import UsageError
from otel_run.analyse._paths import DEEPER, ORPHANS, ROOT, depth
from otel_run.analyse._profile import (
    BASE,
    BYTES,
    COUNT,
    CRITICAL,
    MAX_PATH_DEPTH,
    SELF,
    SKEW_TOLERANCE_NS,
    TOTAL,
    RunProfile,
)
from otel_run.analyse._stats import compare, compare_paired, median

MIN_RUNS = 4
"""Below this many runs a side, no change can be significant at alpha = 0.05: warn."""
MIN_PAIRS = 6
"""Below this many pairs (``paired``), no change can be significant at alpha = 0.05: warn."""


class Row:
    """One path's comparison."""

    __slots__ = (
        "after",
        "before",
        "ci_high_ms",
        "ci_low_ms",
        "critical_after_ms",
        "critical_before_ms",
        "metrics",
        "only_in",
        "p_value",
        "path",
        "significant",
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.p_value = 1.0
        self.significant = False
        self.ci_low_ms = -math.inf
        self.ci_high_ms = math.inf
        self.only_in: str | None = None
        self.critical_before_ms = 0.0
        self.critical_after_ms = 0.0
        self.metrics: dict[str, dict[str, Any]] = {}

    @property
    def before_ms(self) -> float:
        return self.before["total_ms"]

    @property
    def after_ms(self) -> float:
        return self.after["total_ms"]

    @property
    def change_ms(self) -> float:
        return self.after_ms - self.before_ms

    @property
    def change_pct(self) -> float | None:
        return _pct(self.after_ms, self.before_ms)

    @property
    def impact_ms(self) -> float:
        """Change of the path's median time on the critical path (for the
        root: the change of its wall time)."""
        if self.path == ROOT:
            return self.change_ms
        return self.critical_after_ms - self.critical_before_ms

    @property
    def depth(self) -> int:
        return depth(self.path)


class DiffResult:
    """Everything span-diff reports."""

    def __init__(self, alpha: float, metrics: Sequence[str], paired: bool = False) -> None:
        self.alpha = alpha
        self.metrics = list(metrics)
        self.paired = paired
        """Run i before was compared with run i after (Wilcoxon signed-rank), not as two samples."""
        self.rows: list[Row] = []
        """Every path, the root first, then by absolute impact."""
        self.sides: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self.critical_before: list[str] = []
        self.critical_after: list[str] = []
        self.subject = "path"
        """What a row is: a span ``path``, or a ``function`` (``span-diff --functions``)."""

    @property
    def root(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def structural(self) -> dict[str, list[Row]]:
        """Paths on one side only; paths whose span count or bytes changed
        (a function's samples and bytes always change: not listed)."""
        spans = self.subject == "path"
        return {
            "added": [r for r in self.rows if r.only_in == "after"],
            "removed": [r for r in self.rows if r.only_in == "before"],
            "count_changed": [
                r for r in self.rows if spans and r.only_in is None and r.before["count"] != r.after["count"]
            ],
            "bytes_changed": [
                r for r in self.rows if spans and r.only_in is None and r.before["bytes"] != r.after["bytes"]
            ],
        }

    def critical_path_changes(self) -> dict[str, list[str]]:
        before, after = set(self.critical_before), set(self.critical_after)
        return {
            "joined": [p for p in self.critical_after if p not in before],
            "left": [p for p in self.critical_before if p not in after],
        }


# -------------------------------------------------------------------- diff


def diff(
    before: Sequence[RunProfile],
    after: Sequence[RunProfile],
    *,
    alpha: float = 0.05,
    metrics: Sequence[str] = (),
    names: tuple[str, str] = ("before", "after"),
    paired: bool = False,
) -> DiffResult:
    """Compare two sets of run profiles path by path.

    With ``paired`` the i-th run of each side form a pair (the sides must be the
    same size, else :class:`~otel_run._errors.UsageError`) and each path is compared by the Wilcoxon
    signed-rank test of the per-pair differences.
    """
    if paired and len(before) != len(after):
        raise UsageError(
            f"--paired: the sides have {len(before)} and {len(after)} runs; pairs need the same number "
            "(run i before with run i after, in the order they ran)"
        )
    result = DiffResult(alpha, metrics, paired)
    test = compare_paired if paired else compare
    if paired and len(before) < MIN_PAIRS:
        result.warnings.append(
            f"{len(before)} pair{'s' if len(before) != 1 else ''}: with fewer than {MIN_PAIRS} pairs "
            "no change can be significant (--paired); run more rounds"
        )
    for side, profiles, name in (("before", before, names[0]), ("after", after, names[1])):
        result.sides[side] = _side_summary(name, profiles)
        if len(profiles) < MIN_RUNS and not paired:
            result.warnings.append(
                f"{side} ({name}) has {len(profiles)} run{'s' if len(profiles) != 1 else ''}: "
                f"with fewer than {MIN_RUNS} a side no change can be significant; run more (otel-run --runs N)"
            )
        orphans = sum(p.orphans for p in profiles)
        if orphans:
            result.warnings.append(
                f"{side} ({name}): {orphans} span tree(s) whose parent is missing, compared under {ORPHANS}"
            )
        folded = sum(p.folded for p in profiles)
        if folded:
            result.warnings.append(
                f"{side} ({name}): {folded} span(s) deeper than {MAX_PATH_DEPTH} levels, compared by name "
                f"under the path at that depth ('{DEEPER}')"
            )
        skewed = sum(p.skewed for p in profiles)
        if skewed:
            result.warnings.append(
                f"{side} ({name}): {skewed} span(s) outside their parent by more than "
                f"{SKEW_TOLERANCE_NS / 1e6:g} ms (clock skew between hosts?); self times are clipped"
            )
    keys = _ordered_keys(before, after)
    for key in keys:
        row = Row(key)
        b = [p.paths.get(key) for p in before]
        a = [p.paths.get(key) for p in after]
        if all(s is None for s in b):
            row.only_in = "after"
        elif all(s is None for s in a):
            row.only_in = "before"
        row.before = _medians(b)
        row.after = _medians(a)
        totals_b = [s[TOTAL] / 1e6 if s is not None else 0.0 for s in b]
        totals_a = [s[TOTAL] / 1e6 if s is not None else 0.0 for s in a]
        outcome = test(totals_b, totals_a, alpha)
        row.p_value = outcome.p_value
        row.significant = outcome.p_value < alpha and totals_b != totals_a
        row.ci_low_ms, row.ci_high_ms = outcome.ci_low, outcome.ci_high
        row.critical_before_ms = median([s[CRITICAL] / 1e6 if s is not None else 0.0 for s in b])
        row.critical_after_ms = median([s[CRITICAL] / 1e6 if s is not None else 0.0 for s in a])
        for i, name in enumerate(metrics, BASE):
            mb = [s[i] if s is not None else 0.0 for s in b]
            ma = [s[i] if s is not None else 0.0 for s in a]
            if not any(mb) and not any(ma):
                continue
            m = test(mb, ma, alpha)
            row.metrics[name] = {
                "before_median": median(mb),
                "after_median": median(ma),
                "change_pct": _pct(median(ma), median(mb)),
                "p_value": m.p_value,
                "significant": m.p_value < alpha and mb != ma,
            }
        result.rows.append(row)
    root = [r for r in result.rows if r.path == ROOT]
    rest = [r for r in result.rows if r.path != ROOT]
    rest.sort(key=lambda r: (-abs(r.impact_ms), -abs(r.change_ms), r.path))
    result.rows = root + rest
    result.critical_before = _critical_paths(before)
    result.critical_after = _critical_paths(after)
    return result


def significant_slowdowns(result: DiffResult, threshold_pct: float) -> list[Row]:
    """Rows (the root included) that got significantly slower by more than ``threshold_pct``."""
    out = []
    for row in result.rows:
        pct = row.change_pct
        if row.significant and row.change_ms > 0 and (pct is None or pct > threshold_pct):
            out.append(row)
    return out


# ------------------------------------------------------------------ private


def _side_summary(name: str, profiles: Sequence[RunProfile]) -> dict[str, Any]:
    walls = [p.wall_ns / 1e6 for p in profiles]
    return {
        "name": name,
        "runs": len(profiles),
        "spans": sum(p.spans for p in profiles),
        "run_ids": [p.run for p in profiles],
        "wall_median_ms": median(walls),
        "wall_min_ms": min(walls, default=0.0),
        "wall_max_ms": max(walls, default=0.0),
        "errors": sum(p.errors for p in profiles),
        "roots": sorted({p.root_name for p in profiles}),
    }


def _ordered_keys(before: Iterable[RunProfile], after: Iterable[RunProfile]) -> list[str]:
    seen: dict[str, None] = {}
    for profiles in (before, after):
        for p in profiles:
            for key in p.paths:
                seen.setdefault(key, None)
    return list(seen)


def _medians(stats: Sequence[list[float] | None]) -> dict[str, float]:
    def col(i: int, scale: float = 1.0) -> float:
        return median([s[i] / scale if s is not None else 0.0 for s in stats])

    return {
        "total_ms": col(TOTAL, 1e6),
        "self_ms": col(SELF, 1e6),
        "count": col(COUNT),
        "bytes": col(BYTES),
        "runs_with": float(sum(1 for s in stats if s is not None)),
    }


def _critical_paths(profiles: Sequence[RunProfile]) -> list[str]:
    """Paths on the critical path in at least half the runs, heaviest first."""
    if not profiles:
        return []
    counts: dict[str, int] = {}
    weight: dict[str, float] = {}
    for p in profiles:
        for key, stats in p.paths.items():
            if stats[CRITICAL] > 0:
                counts[key] = counts.get(key, 0) + 1
                weight[key] = weight.get(key, 0.0) + stats[CRITICAL]
    half = len(profiles) / 2
    return sorted((k for k, c in counts.items() if c >= half), key=lambda k: -weight[k])


def _pct(after: float, before: float) -> float | None:
    if before == 0:
        return None if after != 0 else 0.0
    return (after - before) / before * 100
