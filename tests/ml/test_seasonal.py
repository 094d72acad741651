"""MSTL recovers the components of a synthetic double-seasonal series and extends them ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.ml.seasonal import (
    SeasonalConfig,
    SeasonalFitter,
    candidate_periods,
    decompose,
    extend,
    usable_periods,
)

DAY, WEEK = 24, 168


def _series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n)
    seasonal = 10 * np.sin(2 * np.pi * t / DAY) + 4 * np.cos(2 * np.pi * t / WEEK) + 2 * (t % WEEK < DAY)
    seasonal -= 2 * DAY / WEEK  # the weekday bump has mean zero over a week, as an MSTL component does
    trend = 100 + 0.01 * t
    return trend + seasonal + np.random.default_rng(seed).normal(0, 0.2, n), seasonal


def test_periods_follow_the_frequency_and_the_data_length() -> None:
    assert candidate_periods(48.0) == (48, 336)
    assert candidate_periods(1.0) == (7, 365)
    assert candidate_periods(1 / 7) == (52,)  # weekly: the year
    assert candidate_periods(12 / 365.25) == (12,)  # monthly
    assert candidate_periods(4 / 365.25) == (4,)  # quarterly
    assert candidate_periods(1 / 365.25) == ()  # yearly: no season
    assert usable_periods((7, 365), 729) == (7,)  # daily: the year only from two years on
    assert usable_periods((DAY, WEEK), 2 * WEEK - 1) == (DAY,)
    assert usable_periods((DAY, WEEK), 2 * WEEK) == (DAY, WEEK)


def test_decomposition_round_trip() -> None:
    values, seasonal = _series(6 * WEEK + DAY)
    known = 5 * WEEK
    components = decompose(values[:known], (DAY, WEEK))
    path = extend(components, (DAY, WEEK), len(values) - known)
    # In sample away from the edges, and one day ahead of the fit.
    inner = slice(WEEK, known - WEEK)
    assert np.max(np.abs(path[inner] - seasonal[inner])) < 1.0
    assert np.max(np.abs(path[known:] - seasonal[known:])) < 1.5
    # What is left is trend plus noise: no seasonality survives.
    remainder = values[:known] - components.sum(axis=0)
    assert np.std(np.diff(remainder[inner])) < 0.6


def test_gaps_are_filled_before_the_fit() -> None:
    values, seasonal = _series(4 * WEEK)
    values[300:310] = np.nan
    path = extend(decompose(values, (DAY, WEEK)), (DAY, WEEK), 0)
    # A straight line across the gap flattens that day's cycle (and, through the weekly smoother, a
    # little of the same hours in other weeks): the fit stays close on the whole.
    assert np.isfinite(path).all() and np.mean(np.abs(path - seasonal)) < 0.4


def test_fits_are_shared_within_a_day() -> None:
    values, _ = _series(4 * WEEK)
    stamps = pd.date_range("2024-01-01", periods=len(values), freq="h")
    fitter = SeasonalFitter(SeasonalConfig((DAY, WEEK), fit_steps=3 * WEEK, steps_per_day=24.0))
    assert fitter.fit_stop(stamps, 3 * WEEK + 5) == 3 * WEEK  # fitted up to the midnight before
    assert fitter.fit_stop(stamps, 3 * WEEK - 1) == 3 * WEEK  # an origin at 23:00 reads the whole day
    a = fitter.around(values, stamps, 3 * WEEK + 5, 8, 4)
    b = fitter.around(values[: 3 * WEEK + 10], stamps[: 3 * WEEK + 10], 3 * WEEK + 5, 8, 4)
    np.testing.assert_array_equal(a, b)  # later readings of the same day do not move the fit
    assert len(fitter._cache) == 1 and len(a) == 12
