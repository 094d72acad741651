from __future__ import annotations

import json

import numpy as np

from app.ml.evaluation import Forecasts, choose_baseline, conformal_quantiles, report, seasonal_naive


def test_seasonal_naive_uses_only_readings_up_to_the_origin() -> None:
    values = np.arange(20.0)
    np.testing.assert_array_equal(
        seasonal_naive(values, np.array([9]), horizon=6, period=4),
        [[6, 7, 8, 9, 6, 7]],
    )


def test_conformal_quantiles_use_the_finite_sample_rank() -> None:
    errors = np.arange(1.0, 11.0)[:, None] * np.array([[1.0, 2.0]])
    q = conformal_quantiles(errors, levels=(80, 95))
    assert q == {"80": [9.0, 18.0], "95": [10.0, 20.0]}
    # A step further ahead never gets a narrower interval than the step before it.
    assert conformal_quantiles(errors[:, ::-1], levels=(80,)) == {"80": [18.0, 18.0]}


def test_report_is_json_and_compares_with_seasonal_naive() -> None:
    actual = np.array([[10.0, 12.0], [11.0, 13.0]])
    forecasts = Forecasts(
        actual=actual,
        model=actual + np.array([[1.0, -1.0], [1.0, -3.0]]),
        naive=actual + 2.0,
        scale=np.array([1.0, 1.0]),
        mase_scale=np.array([2.0, 2.0]),
    )
    quantiles = {"80": [1.0, 1.0], "95": [1.0, 3.0]}
    metrics = report(forecasts, quantiles, seasonal_period=4, validation_origins=9)
    json.dumps(metrics)
    assert metrics["one_step"]["model"]["mae"] == 1.0
    assert metrics["full_horizon"]["model"]["mae"] == 1.5
    assert metrics["full_horizon"]["model"]["rmse"] == np.sqrt(3.0)
    assert metrics["full_horizon"]["model"]["mase"] == 0.75
    assert metrics["full_horizon"]["seasonal_naive"]["mase"] == 1.0
    assert metrics["interval_coverage"] == {"80": 0.75, "95": 1.0}


def test_baseline_is_the_stronger_seasonal_naive() -> None:
    rng = np.random.default_rng(0)
    week = np.tile(rng.normal(0, 20, 168), 6) + rng.normal(0, 0.5, 6 * 168)
    day = np.tile(rng.normal(0, 20, 24), 42) + rng.normal(0, 0.5, 42 * 24)
    assert choose_baseline([week], (24, 168)) == 168
    assert choose_baseline([day], (24, 168)) == 24
    # A lag the training part does not cover twice is never chosen.
    assert choose_baseline([week[:300]], (24, 168)) == 24


def test_missing_readings_are_never_scored_or_calibrated() -> None:
    errors = np.array([[1.0, np.nan], [2.0, 4.0], [3.0, np.nan]])
    assert conformal_quantiles(errors, levels=(50,)) == {"50": [2.0, 4.0]}
    actual = np.array([[10.0, np.nan], [11.0, 13.0]])
    forecasts = Forecasts(actual=actual, model=actual + 1.0, naive=actual + 2.0,
                          scale=np.ones(2), mase_scale=np.full(2, 2.0))
    metrics = report(forecasts, {"80": [1.0, 1.0], "95": [2.0, 2.0]}, seasonal_period=2,
                     validation_origins=1)
    assert metrics["full_horizon"]["model"]["mae"] == 1.0
    assert metrics["full_horizon"]["seasonal_naive"]["mase"] == 1.0
    assert metrics["interval_coverage"]["80"] == 1.0
    assert metrics["interval_coverage_by_step"]["80"] == [1.0, 1.0]
