import numpy as np
import pytest

from app.ml.covariates import CovariateCoverageError, align, covered_until, require_covered

HOUR = 3600.0


def test_hourly_under_half_hourly_interpolates_between_neighbours():
    ts = np.arange(4) * HOUR
    grid = np.arange(8) * HOUR / 2
    out = align(ts, np.array([0.0, 2.0, 4.0, 6.0]), grid)
    np.testing.assert_allclose(out[:7], [0, 1, 2, 3, 4, 5, 6])
    assert np.isnan(out[7])  # past the last reading: never extrapolated


def test_a_missing_reading_leaves_its_neighbourhood_nan():
    ts = np.arange(5) * HOUR
    values = np.array([0.0, 1.0, np.nan, 3.0, 4.0])
    out = align(ts, values, np.arange(9) * HOUR / 2)
    assert np.isnan(out[3:6]).all()  # 1:30, 2:00, 2:30
    np.testing.assert_allclose(out[[0, 1, 2, 6, 7, 8]], [0, 0.5, 1, 3, 3.5, 4])


def test_before_the_first_reading_is_nan_and_exact_times_match():
    out = align(np.array([HOUR, 2 * HOUR]), np.array([5.0, 7.0]), np.array([0.0, HOUR, 2 * HOUR]))
    assert np.isnan(out[0]) and out[1] == 5.0 and out[2] == 7.0


def test_bad_times_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        align(np.array([1.0, 1.0]), np.array([1.0, 2.0]), np.array([1.0]))


def test_coverage_names_the_covariate_and_its_last_time():
    grid = np.arange(4) * HOUR + 1_800_000_000
    aligned = np.array([1.0, 2.0, np.nan, np.nan])
    with pytest.raises(CovariateCoverageError, match="'temperature' covers until 2027") as caught:
        require_covered("temperature", aligned, grid)
    assert caught.value.covered_until_s == grid[1]
    require_covered("temperature", np.ones(4), grid)
    assert covered_until(grid, aligned) == grid[1]
    assert covered_until(grid, np.full(4, np.nan)) is None
