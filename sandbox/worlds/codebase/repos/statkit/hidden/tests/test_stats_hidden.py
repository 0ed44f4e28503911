import pytest
from statkit import clamp, median, moving_average, normalize, percentile, variance


def test_median_even_unsorted():
    assert median([10, 2, 8, 4]) == 6
    assert median([1.5, 0.5]) == 1.0


def test_variance_sample_small():
    assert variance([1, 2, 3, 4]) == pytest.approx(5 / 3)
    assert variance([5, 5, 5]) == 0


def test_percentile_extremes():
    assert percentile([3, 1, 2], 100) == 3
    assert percentile([3, 1, 2], 0) == 1
    assert percentile([7], 90) == 7


def test_clamp_bounds():
    assert clamp(3, 3, 3) == 3
    assert clamp(-5, -2, 2) == -2
    assert clamp(0.5, 0, 1) == 0.5


def test_normalize_constant():
    assert normalize([4, 4, 4]) == [0.0, 0.0, 0.0]


def test_moving_average_windows():
    assert moving_average([2, 4, 6, 8], 1) == [2.0, 4.0, 6.0, 8.0]
    assert moving_average([1, 1, 1, 5], 2) == [1.0, 1.0, 3.0]
    assert moving_average([1, 2], 3) == []
