from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence

import pytest

from otel_run.analyse._stats import Comparison, _null_counts, _signed_rank_counts, compare, compare_paired, median

Sides = tuple[Callable[[Sequence[float], Sequence[float]], Comparison], list[float], list[float]]


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (2, 3), (3, 4), (4, 4), (5, 2), (6, 6)])
def test_exact_null_distribution_matches_enumeration(n1: int, n2: int) -> None:
    counts = [0] * (n1 * n2 + 1)
    for chosen in itertools.combinations(range(1, n1 + n2 + 1), n1):
        counts[sum(chosen) - n1 * (n1 + 1) // 2] += 1
    assert _null_counts(n1, n2) == tuple(counts)


def test_known_p_values() -> None:
    # complete separation of 5 vs 5: exact two-sided p = 2 / C(10, 5)
    assert compare([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]).p_value == pytest.approx(2 / 252)
    # identical samples: no evidence at all
    assert compare([1, 2, 3], [1, 2, 3]).p_value == pytest.approx(1.0)
    # ties: the normal approximation with tie and continuity corrections
    ties = compare([1, 1, 2, 2, 3, 3, 3, 4], [3, 4, 4, 5, 5, 5, 6, 6])
    assert not ties.exact and 0.001 < ties.p_value < 0.01


def test_three_runs_a_side_can_never_be_significant() -> None:
    assert compare([1, 2, 3], [10, 11, 12]).p_value == pytest.approx(0.1)
    one = compare([1.0], [2.0])
    assert one.p_value == 1.0 and math.isinf(one.ci_low)


def test_interval_contains_the_true_shift_and_agrees_with_the_test() -> None:
    rng = random.Random(7)
    before = [rng.gauss(100, 5) for _ in range(30)]
    after = [rng.gauss(120, 5) for _ in range(30)]
    c = compare(before, after)
    assert c.ci_low < 20 < c.ci_high
    assert c.p_value < 0.05 and c.ci_low > 0  # significant <=> the interval excludes 0
    same = compare(before, [rng.gauss(100, 5) for _ in range(30)])
    assert (same.p_value < 0.05) == (same.ci_low > 0 or same.ci_high < 0)


TRIALS = 2000
AT_MOST_ALPHA = 0.05 + 2 * math.sqrt(0.05 * 0.95 / TRIALS)  # alpha, plus two standard errors of the estimate


def _false_positive_rate(seed: int, sizes: tuple[int, ...], sides: Callable[[random.Random, int], Sides]) -> float:
    """How often ``test`` calls a difference significant between two sides drawn alike."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(TRIALS):
        test, a, b = sides(rng, rng.choice(sizes))
        hits += test(a, b).p_value < 0.05
    return hits / TRIALS


def test_false_positive_rate_stays_at_alpha() -> None:
    def alike(rng: random.Random, n: int) -> Sides:
        return compare, [rng.lognormvariate(0, 0.3) for _ in range(n)], [rng.lognormvariate(0, 0.3) for _ in range(n)]

    assert _false_positive_rate(1, (5, 10, 30), alike) <= AT_MOST_ALPHA


def test_power_finds_a_20_percent_slowdown_under_5_percent_noise() -> None:
    rng = random.Random(2)
    found = sum(
        compare([rng.gauss(100, 5) for _ in range(30)], [rng.gauss(120, 6) for _ in range(30)]).p_value < 0.05
        for _ in range(200)
    )
    assert found == 200


def test_median() -> None:
    assert median([]) == 0.0
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 2, 3]) == 2.5


# ------------------------------------------------------------------ paired (Wilcoxon signed-rank)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_signed_rank_null_distribution_matches_enumeration(n: int) -> None:
    counts = [0] * (n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(rank for rank, positive in zip(range(1, n + 1), signs, strict=True) if positive)] += 1
    assert _signed_rank_counts(n) == tuple(counts)


def test_paired_known_values() -> None:
    # six pairs all one way: exact two-sided p = 2 / 2**6; the 95% interval is the extreme Walsh averages
    c = compare_paired([0] * 6, [1, 2, 3, 4, 5, 6])
    assert c.exact and c.p_value == pytest.approx(2 / 64)
    assert (c.shift, c.ci_low, c.ci_high) == (3.5, 1.0, 6.0)
    # five pairs can never be significant at 0.05
    assert compare_paired([0] * 5, [1, 2, 3, 4, 5]).p_value == pytest.approx(2 / 32)
    # reference values from scipy 1.17.1, scipy.stats.wilcoxon(after, before): exact, and with a zero
    # difference and ties (zero_method="wilcox", the normal approximation with continuity correction)
    exact = compare_paired(
        [3.1, 4.2, 5.3, 2.4, 6.5, 7.6, 1.7, 8.8, 9.9, 4.0], [2.9, 4.5, 4.1, 2.0, 6.6, 5.9, 1.2, 8.0, 8.1, 3.3]
    )
    assert exact.exact and exact.p_value == pytest.approx(0.013671875)
    ties = compare_paired([10, 12, 11, 14, 13, 15, 12, 16], [9, 12, 10, 12, 12, 13, 12, 13])
    assert not ties.exact and ties.p_value == pytest.approx(0.03350525679082817)
    with pytest.raises(ValueError, match="different sizes"):
        compare_paired([1, 2], [1, 2, 3])


def test_pairing_cancels_drift_between_rounds_that_hides_the_change_from_the_unpaired_test() -> None:
    # eight interleaved rounds; the machine's speed drifts by ±30% from round to round, the change is −5%
    rng = random.Random(3)
    drift = [1.0, 1.3, 0.8, 1.25, 0.75, 1.1, 0.9, 1.2]
    before = [100 * d * rng.uniform(0.995, 1.005) for d in drift]
    after = [95 * d * rng.uniform(0.995, 1.005) for d in drift]
    assert compare(before, after).p_value > 0.3  # two samples: the drift swamps 5%
    paired = compare_paired(before, after)
    assert paired.p_value == pytest.approx(2 / 2**8)  # every pair faster
    assert paired.ci_high < 0 and paired.ci_low > -20


def test_paired_false_positive_rate_stays_at_alpha() -> None:
    def drifting_alike(rng: random.Random, n: int) -> Sides:
        drift = [rng.uniform(0.7, 1.3) for _ in range(n)]
        return (
            compare_paired,
            [d * rng.lognormvariate(0, 0.1) for d in drift],
            [d * rng.lognormvariate(0, 0.1) for d in drift],
        )

    assert _false_positive_rate(4, (6, 10, 30), drifting_alike) <= AT_MOST_ALPHA
