from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.ml.data import (
    MAX_INTERPOLATED_GAP_STEPS,
    SeriesData,
    TrainingDataError,
    chronological_split,
    interpolate_short_gaps,
    prepare_series,
    segments,
)
from tests.ml.conftest import make_series

PREPARE = {"window": 8, "horizon": 1, "period": 24, "validation_fraction": 0.1, "test_fraction": 0.1}


def test_short_gaps_are_interpolated_and_long_gaps_kept() -> None:
    values = np.arange(20, dtype=float)
    values[3:5] = np.nan  # 2 missing: filled
    long_gap = slice(8, 8 + MAX_INTERPOLATED_GAP_STEPS + 1)
    values[long_gap] = np.nan
    values[0] = np.nan  # leading: nothing to interpolate from
    filled = interpolate_short_gaps(values)
    np.testing.assert_allclose(filled[3:5], [3.0, 4.0])
    assert np.isnan(filled[long_gap]).all()
    assert np.isnan(filled[0])
    assert segments(filled) == [(1, 8), (8 + MAX_INTERPOLATED_GAP_STEPS + 1, 20)]


def test_chronological_split_gives_each_part_at_least_one_period() -> None:
    assert chronological_split(1000, 24, 0.1, 0.1).__dict__ == {
        "n": 1000,
        "val_start": 800,
        "test_start": 900,
        "calibration_tail": 0,
    }
    small = chronological_split(200, 48, 0.1, 0.1)
    assert (small.test_start - small.val_start, small.n - small.test_start) == (48, 48)


def test_scale_is_fitted_on_the_training_part_only() -> None:
    base = make_series(480)
    tampered_values = base.values.copy()
    tampered_values[400:] *= 1000
    tampered = SeriesData(tampered_values, base.timestamps, base.freq, base.name)
    a, b = prepare_series(base, **PREPARE), prepare_series(tampered, **PREPARE)
    assert a.split.val_start == 384
    assert a.scale == b.scale
    assert a.scale == pytest.approx(np.std(base.values[:384]))


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (np.full(480, np.nan), "has no readings"),
        (np.full(480, 5.0), "is constant (5) in its training part"),
        (np.arange(60, dtype=float), "spans 60 readings; this model needs at least"),
    ],
)
def test_unusable_series_raise_a_sentence(values: np.ndarray, fragment: str) -> None:
    series = SeriesData(values, pd.date_range("2024-01-01", periods=len(values), freq="h"), "h", "meter 7")
    with pytest.raises(TrainingDataError) as caught:
        prepare_series(series, **PREPARE)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith("Series 'meter 7'") and message.endswith(".")


def test_irregular_grid_is_rejected() -> None:
    timestamps = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 03:00"])
    with pytest.raises(TrainingDataError, match="not on a regular h grid"):
        SeriesData(np.ones(3), timestamps, "h", "x")
