from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from app.ml.features import (
    FeatureConfig,
    calendar,
    to_values,
    window_batch,
)
from app.ml.stream_seasonal import change_inputs, in_sample_arrays

CONFIG = FeatureConfig(window=5, horizon=3, stream=False, time_of_day=True, day_of_week=True)


def test_calendar_phases() -> None:
    # 2024-01-01 is a Monday.
    ts = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-04 12:00"])
    cal = calendar(ts, CONFIG)
    assert cal.shape == (3, 4)
    np.testing.assert_allclose(cal[0], [0, 1, 0, 1], atol=1e-12)
    np.testing.assert_allclose(cal[1, :2], [1, 0], atol=1e-12)  # a quarter of the day
    np.testing.assert_allclose(cal[2, 2:], [np.sin(np.pi * 3.5 / 3.5), np.cos(np.pi)], atol=1e-12)
    daily = FeatureConfig(window=8, horizon=1, stream=False, time_of_day=False, day_of_week=False)
    assert calendar(ts, daily).shape == (3, 0)


def test_window_batch_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    scaled = rng.normal(size=40)
    cal = rng.normal(size=(40, 4))
    ends = np.array([4, 10, 36])
    x, y = window_batch(scaled, cal, ends, CONFIG)
    assert y is not None
    for i, end in enumerate(ends):
        rows = slice(end - 4, end + 1)
        np.testing.assert_allclose(x[i, :, 0], scaled[rows] - scaled[end], atol=1e-6)
        np.testing.assert_allclose(x[i, :, 1:], cal[rows], atol=1e-6)
        np.testing.assert_allclose(y[i], scaled[end + 1 : end + 4] - scaled[end], atol=1e-6)
    assert x.dtype == np.float32 and x.shape == (3, 5, 5)


def test_level_shift_changes_nothing_the_network_sees() -> None:
    scaled = np.sin(np.arange(30.0))
    cal = np.zeros((30, 4))
    ends = np.array([10, 20])
    a = window_batch(scaled, cal, ends, CONFIG)
    b = window_batch(scaled + 50.0, cal, ends, CONFIG)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_stream_inputs_and_targets() -> None:
    # A raw stream model: no seasonal component, so z is the reading itself.
    scaled = np.array([1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(change_inputs(scaled, 1.0, None), [0, 2, -1, 3])
    np.testing.assert_allclose(change_inputs(scaled, 1.0, 0.5)[0], 0.5)
    targets = in_sample_arrays(scaled, np.zeros(4), 1.0, 2).targets
    np.testing.assert_allclose(targets[:2], [[2, 1], [-1, 2]])
    assert np.isnan(targets[2, 1]) and np.isnan(targets[3]).all()


def test_to_values_inverts_the_target_transform() -> None:
    values = np.array([10.0, 12.0, 11.0, 15.0, 9.0, 13.0, 14.0, 8.0, 7.0])
    scale = 2.5
    _, y = window_batch(
        values / scale, np.zeros((9, 0)), np.array([4]), FeatureConfig(5, 3, False, False, False)
    )
    assert y is not None
    np.testing.assert_allclose(to_values(y, values[[4]], scale), [values[5:8]], atol=1e-5)


def test_calendar_follows_local_time_across_a_dst_change() -> None:
    # 08:00 in London is 08:00 UTC before 31 March 2024 and 07:00 UTC after it.
    ts = pd.DatetimeIndex(["2024-03-29 08:00", "2024-04-02 07:00", "2024-04-02 08:00"])
    local = calendar(ts, dataclasses.replace(CONFIG, timezone="Europe/London"))
    np.testing.assert_allclose(local[0, :2], local[1, :2], atol=1e-12)
    assert not np.allclose(local[0, :2], local[2, :2])
    utc = calendar(ts, CONFIG)
    np.testing.assert_allclose(utc[0, :2], utc[2, :2], atol=1e-12)
    assert FeatureConfig.from_dict({**CONFIG.to_dict(), "timezone": "Europe/London"}).timezone == (
        "Europe/London")
    assert FeatureConfig.from_dict({k: v for k, v in CONFIG.to_dict().items()
                                    if k != "timezone"}).timezone == "UTC"  # older models


def test_masked_windows_carry_a_presence_flag_and_keep_targets_missing() -> None:
    config = FeatureConfig(window=3, horizon=2, stream=False, time_of_day=False,
                           day_of_week=False, masked=True)
    scaled = np.array([1.0, np.nan, 3.0, 4.0, np.nan, 6.0])
    x, y = window_batch(scaled, np.zeros((6, 0)), np.array([3]), config)
    assert config.input_names == ["value_minus_last", "present"]
    np.testing.assert_array_equal(x[0], [[0.0, 0.0], [-1.0, 1.0], [0.0, 1.0]])
    assert y is not None and np.isnan(y[0, 0]) and y[0, 1] == 2.0
