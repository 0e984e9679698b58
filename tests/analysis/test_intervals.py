"""Wilson score intervals against published values, and ties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpo.analysis.intervals import format_interval, tie, wilson_interval, z_value


def test_z_value_for_95_percent():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.99) == pytest.approx(2.575829, abs=1e-6)


@pytest.mark.parametrize("k, n, lower, upper", [
    (70, 100, 0.6042, 0.7811),  # Newcombe (1998), method 3, as computed by statsmodels proportion_confint
    (81, 263, 0.2553, 0.3662),  # Wilson's own worked example in Newcombe (1998), table I
    (0, 10, 0.0, 0.2775),       # no success: the interval still has width
    (10, 10, 0.7225, 1.0),
    (560, 800, 0.6674, 0.7307),  # 0.70 on MINICIFAR's 800 validation images: about ±3.2 points
])
def test_known_intervals(k, n, lower, upper):
    low, high = wilson_interval(k / n, n)
    assert low == pytest.approx(lower, abs=1e-4)
    assert high == pytest.approx(upper, abs=1e-4)


@given(st.integers(1, 100_000), st.data())
def test_interval_contains_the_accuracy_and_stays_in_unit_range(n, data):
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k / n, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_more_images_narrow_the_interval():
    widths = [wilson_interval(0.7, n)[1] - wilson_interval(0.7, n)[0] for n in (100, 800, 10_000)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] / 2 == pytest.approx(0.0316, abs=5e-4)


@pytest.mark.parametrize("accuracy, n", [(0.5, 0), (0.5, -3), (1.5, 10), (math.nan, 10), (0.5, 2.5)])
def test_bad_input_is_refused(accuracy, n):
    with pytest.raises(ValueError):
        wilson_interval(accuracy, n)


def test_ties_are_overlaps():
    a, b = wilson_interval(0.70, 800), wilson_interval(0.72, 800)
    assert tie(a, b) and tie(b, a)
    assert not tie(wilson_interval(0.60, 800), wilson_interval(0.72, 800))
    assert tie((0.1, 0.2), (0.2, 0.3))  # touching intervals tie


def test_format():
    # One format for every accuracy hpo prints (hpo.analysis.intervals.format_accuracy).
    assert format_interval(0.7, wilson_interval(0.7, 800)) == "70.00% [66.7, 73.1]"
    assert format_interval(0.7, None) == "70.00%"
