from __future__ import annotations

import itertools
import math
import random

import pytest

from otel_run.analyse._stats import _null_counts, compare, median


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


def test_false_positive_rate_stays_at_alpha() -> None:
    rng = random.Random(1)
    trials, hits = 2000, 0
    for _ in range(trials):
        n = rng.choice((5, 10, 30))
        a = [rng.lognormvariate(0, 0.3) for _ in range(n)]
        b = [rng.lognormvariate(0, 0.3) for _ in range(n)]
        hits += compare(a, b).p_value < 0.05
    assert hits / trials <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / trials)


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
