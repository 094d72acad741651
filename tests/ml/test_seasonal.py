"""MSTL recovers the components of a synthetic double-seasonal series and extends them ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.ml.features import FeatureConfig, training_seasonal
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


def _local_spike(tz: str, start: str, end: str) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Hourly readings (naive UTC) that peak at 08:00 local time every day."""
    stamps = pd.date_range(start, end, freq="h")
    local_hour = stamps.tz_localize("UTC").tz_convert(tz).hour
    noise = np.random.default_rng(0).normal(0, 0.5, len(stamps))
    return 100 + 50 * (local_hour == 8) + noise, stamps


def test_daily_season_keeps_local_hours_across_a_dst_change() -> None:
    # Four weeks of GMT, then a forecast into the first days of British Summer Time.
    values, stamps = _local_spike("Europe/London", "2024-03-03 00:00", "2024-03-30 23:00")
    ahead = 48  # 31 March and 1 April (UTC)
    future = pd.date_range(stamps[-1], periods=ahead + 1, freq="h")[1:]
    all_stamps = stamps.append(future)
    for tz, peak_utc_hour in (("Europe/London", 7), ("UTC", 8)):
        fitter = SeasonalFitter(SeasonalConfig((DAY, WEEK), 12 * WEEK, 24.0, tz))
        padded = np.concatenate([values, np.full(ahead, np.nan)])
        path = fitter.around(padded, all_stamps, len(values) - 1, DAY, ahead)
        april_first = path[DAY + DAY:]  # the forecast's second day, wholly in summer time
        assert int(np.argmax(april_first)) == peak_utc_hour, tz


def test_training_fit_on_the_wall_clock_matches_serving_shape() -> None:
    values, stamps = _local_spike("Europe/London", "2024-03-03 00:00", "2024-04-13 23:00")
    config = FeatureConfig(window=DAY, horizon=DAY, stream=False, time_of_day=False,
                           day_of_week=False, seasonal_periods=(DAY, WEEK), fit_steps=12 * WEEK,
                           steps_per_day=24.0, timezone="Europe/London")
    seasonal = training_seasonal(values, 4 * WEEK, config, stamps)
    assert seasonal.shape == values.shape
    # After the change the in-sample fit and its extension peak at 07:00 UTC (08:00 BST).
    last_day = seasonal[-DAY:]
    assert int(np.argmax(last_day)) == 7


def test_a_fit_is_stored_as_float32_and_reads_back_exactly() -> None:
    """A fit is rounded to float32 when made, so its compact binary form reads back the very
    numbers every reader computed with; the JSON lists stored before it still read."""
    import json

    import pytest

    from app.ml.seasonal import SeasonalConfig, SeasonalFitter, decode_cycles, encode_cycles

    t = np.arange(48 * 21)
    values = 100 + 10 * np.sin(2 * np.pi * t / 48) + 3 * np.sin(2 * np.pi * t / 336)
    fit = SeasonalFitter(SeasonalConfig((48, 336), 48 * 21, 48.0)).cycles_before(values, len(values))
    assert [c.dtype for c in fit.cycles] == [np.float32, np.float32]
    stored = encode_cycles(fit)
    assert len(stored) == 2 + 2 * 4 + 4 * (48 + 336)  # ~1.5 KB; its JSON was ~8 KB
    back = decode_cycles(stored)
    assert [c.tobytes() for c in back.cycles] == [c.tobytes() for c in fit.cycles]
    np.testing.assert_array_equal(back.at(np.arange(-48, 400)), fit.at(np.arange(-48, 400)))
    # Rows stored before: JSON lists of float64, as text, bytes, or parsed (PostgreSQL's JSON).
    old = [[0.5, -0.25], [1.0, 2.0, 3.0]]
    for form in (json.dumps(old), json.dumps(old).encode(), old):
        assert [c.tolist() for c in decode_cycles(form).cycles] == old
    with pytest.raises(ValueError, match="cut short"):
        decode_cycles(stored[:-4])
    with pytest.raises(ValueError, match="format 9"):
        decode_cycles(b"\x09" + stored[1:])
