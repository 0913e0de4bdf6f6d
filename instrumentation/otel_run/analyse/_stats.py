"""Small-sample statistics for before/after comparisons.

span-diff compares two sets of per-run values (a span path's time in each run)
with the **Mann–Whitney U test** and reports the **Hodges–Lehmann** confidence
interval of the shift — the model benchstat uses, and for the same reasons:

* span durations are not normal: they are skewed, bounded below, with a long
  tail of slow runs (a GC pause, a cold cache). A rank test assumes nothing
  about the shape, and one outlier moves a rank by one, not the mean by a lot.
* runs are few (5–30 a side). The U test has an exact null distribution, used
  here whenever there are no ties and the samples are small enough; with ties
  (or large samples) the normal approximation with tie and continuity
  corrections takes over. The exact test is conservative: its false-positive
  rate is at most alpha.
* the interval comes from inverting the same test (the pairwise differences'
  order statistics), so "significant" and "the interval excludes zero" agree.
  A bootstrap would give a second, slightly different answer, and at n = 5 its
  intervals are too narrow.

``scipy.stats.mannwhitneyu`` does the test; it is written out here (about a
hundred lines) because scipy is a 40 MB dependency for one function.

With ``span-diff --paired`` the runs of the two sides are taken as pairs (the
i-th run before with the i-th run after: the rounds of an interleaved
benchmark), and :func:`compare_paired` runs the **Wilcoxon signed-rank test**
on the per-pair differences, with the Hodges–Lehmann interval from their Walsh
averages (``scipy.stats.wilcoxon``'s model). Drift between rounds hits both
runs of a pair and cancels out of their difference, which an unpaired test
cannot do; the price is that it needs pairs (6 at alpha = 0.05).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from functools import lru_cache

EXACT_LIMIT = 50
"""Largest sample (a side) for the exact distribution; above it, the normal approximation."""


class Comparison:
    """The outcome of comparing ``before`` and ``after``."""

    __slots__ = ("ci_high", "ci_low", "exact", "p_value", "shift", "u")

    def __init__(self, u: float, p_value: float, shift: float, ci_low: float, ci_high: float, exact: bool) -> None:
        self.u = u
        self.p_value = p_value
        self.shift = shift
        """Hodges–Lehmann estimate of after − before."""
        self.ci_low = ci_low
        self.ci_high = ci_high
        self.exact = exact


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return float(statistics.median(values)) if values else 0.0


def compare(before: Sequence[float], after: Sequence[float], alpha: float = 0.05) -> Comparison:
    """Two-sided Mann–Whitney U test of ``before`` vs ``after`` and the
    ``1 - alpha`` Hodges–Lehmann interval of the shift (after − before).

    With an empty side, the p-value is 1 and the interval is unbounded.
    """
    n1, n2 = len(before), len(after)
    if n1 == 0 or n2 == 0:
        return Comparison(0.0, 1.0, 0.0, -math.inf, math.inf, False)
    ranks, ties = _ranks([*before, *after])
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    exact = not ties and max(n1, n2) <= EXACT_LIMIT
    if exact:
        p_value = _exact_p(u, n1, n2)
        c = _exact_critical(n1, n2, alpha)
    else:
        p_value, sigma = _normal_p(u, n1, n2, ties, n1 + n2)
        z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        c = math.floor(n1 * n2 / 2 - z * sigma) if sigma > 0 else -1
    diffs = sorted(y - x for x in before for y in after)
    low, high = _interval(diffs, c)
    return Comparison(u, p_value, median(diffs), low, high, exact)


def compare_paired(before: Sequence[float], after: Sequence[float], alpha: float = 0.05) -> Comparison:
    """Two-sided Wilcoxon signed-rank test of the pairs ``(before[i], after[i])``
    and the ``1 - alpha`` Hodges–Lehmann interval of the shift (after − before):
    the order statistics of the Walsh averages of the differences.

    Zero differences are left out of the test (Wilcoxon's rule) but kept in the
    estimate. Exact without ties or zeros up to :data:`EXACT_LIMIT` pairs; the
    normal approximation with tie and continuity corrections otherwise.

    Raises:
        ValueError: the sides do not have the same number of values.
    """
    if len(before) != len(after):
        raise ValueError(f"paired samples of different sizes ({len(before)} and {len(after)})")
    d = [y - x for x, y in zip(before, after, strict=True)]
    n_all = len(d)
    if n_all == 0:
        return Comparison(0.0, 1.0, 0.0, -math.inf, math.inf, False)
    nonzero = [v for v in d if v != 0]
    n = len(nonzero)
    walsh = sorted((d[i] + d[j]) / 2 for i in range(n_all) for j in range(i, n_all))
    shift = median(walsh)
    if n == 0:
        return Comparison(0.0, 1.0, 0.0, shift, shift, False)
    ranks, ties = _ranks([abs(v) for v in nonzero])
    w_plus = sum(r for r, v in zip(ranks, nonzero, strict=True) if v > 0)
    exact = not ties and n == n_all and n <= EXACT_LIMIT
    if exact:
        counts = _signed_rank_counts(n)
        p_value, c = _two_sided_p(counts, w_plus), _signed_rank_critical(n, alpha)
    else:
        variance = n * (n + 1) * (2 * n + 1) / 24 - sum(t**3 - t for t in ties) / 48
        sigma = math.sqrt(variance) if variance > 0 else 0.0
        z = max(0.0, abs(w_plus - n * (n + 1) / 4) - 0.5) / sigma if sigma else 0.0
        p_value = min(1.0, math.erfc(z / math.sqrt(2))) if sigma else 1.0
        full_sigma = math.sqrt(n_all * (n_all + 1) * (2 * n_all + 1) / 24)
        q = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        c = math.floor(len(walsh) / 2 - q * full_sigma)
    low, high = _interval(walsh, c)
    return Comparison(w_plus, p_value, shift, low, high, exact)


# ------------------------------------------------------------------ private


@lru_cache(maxsize=64)
def _signed_rank_counts(n: int) -> tuple[int, ...]:
    """How many of the 2**n sign assignments give W+ = 0, 1, …, n(n+1)/2: the
    coefficients of the product of (1 + q^i) for i = 1 … n."""
    poly = [1]
    for i in range(1, n + 1):
        poly = [a + b for a, b in zip(poly + [0] * i, [0] * i + poly, strict=True)]
    return tuple(poly)


@lru_cache(maxsize=256)
def _signed_rank_critical(n: int, alpha: float) -> int:
    """The largest c with P(W+ <= c) <= alpha / 2 (-1 when there is none)."""
    return _lower_critical(_signed_rank_counts(n), alpha)


def _interval(ordered: list[float], c: int) -> tuple[float, float]:
    """The Hodges–Lehmann interval: the c-th smallest and largest of the sorted
    pairwise differences (or Walsh averages); unbounded when ``c`` leaves none."""
    m = len(ordered)
    if 0 <= c < m - c - 1:
        return ordered[c], ordered[m - c - 1]
    return -math.inf, math.inf  # too few runs for any interval at this level


def _two_sided_p(counts: tuple[int, ...], statistic: float) -> float:
    """Two-sided exact p of ``statistic`` under a null distribution given as counts per value."""
    k = round(statistic)
    return min(1.0, 2 * min(sum(counts[: k + 1]), sum(counts[k:])) / sum(counts))


def _lower_critical(counts: tuple[int, ...], alpha: float) -> int:
    """The largest c with P(statistic <= c) <= alpha / 2 (-1 when there is none)."""
    total = sum(counts)
    cumulative = 0
    for c, count in enumerate(counts):
        cumulative += count
        if cumulative / total > alpha / 2:
            return c - 1
    return len(counts) - 1


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based) and the sizes of tied groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


@lru_cache(maxsize=64)
def _null_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings give U = 0, 1, …, n1·n2: the
    coefficients of the Gaussian binomial [n1+n2 choose n1]_q."""
    poly = [1]
    for i in range(1, n1 + 1):
        # multiply by (1 - q^(n2+i)) ...
        shifted = [0] * (n2 + i) + poly
        poly = [a - b for a, b in zip(poly + [0] * (len(shifted) - len(poly)), shifted, strict=True)]
        # ... and divide by (1 - q^i), exactly
        for k in range(i, len(poly)):
            poly[k] += poly[k - i]
        poly = poly[: n1 * n2 + 1] if len(poly) > n1 * n2 + 1 else poly
    return tuple(poly[: n1 * n2 + 1])


def _exact_p(u: float, n1: int, n2: int) -> float:
    return _two_sided_p(_null_counts(n1, n2), u)


@lru_cache(maxsize=256)
def _exact_critical(n1: int, n2: int, alpha: float) -> int:
    """The largest c with P(U <= c) <= alpha / 2 (-1 when there is none)."""
    return _lower_critical(_null_counts(n1, n2), alpha)


def _normal_p(u: float, n1: int, n2: int, ties: list[int], n: int) -> tuple[float, float]:
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12 * ((n + 1) - tie_term)
    if variance <= 0:
        return 1.0, 0.0
    sigma = math.sqrt(variance)
    z = max(0.0, abs(u - n1 * n2 / 2) - 0.5) / sigma
    return min(1.0, math.erfc(z / math.sqrt(2))), sigma
