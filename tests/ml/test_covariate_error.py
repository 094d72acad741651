"""The simulated covariate forecast error that calibration adds, wherever a model reads the
future covariates: one draw per origin, and only on values that exist."""

import numpy as np

from app.ml.features import COLUMNS_PER_COVARIATE, FeatureConfig
from app.ml.training import CALIBRATION_ERROR_RHO, _CovariateError, _with_future_error

HORIZON = 24


def _error(spread: float = 2.0) -> _CovariateError:
    return _CovariateError(seed=7, horizon=HORIZON, spreads={"load": {"temperature": spread}})


def test_an_origin_draws_the_same_error_for_profile_and_network() -> None:
    error = _error()
    first, again = error.draw("load", 100)["temperature"], error.draw("load", 100)["temperature"]
    other = error.draw("load", 101)["temperature"]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_the_error_is_smooth_and_has_the_spread_asked_for() -> None:
    draws = np.stack([_error(2.0).draw("load", end)["temperature"] for end in range(4000)])
    assert abs(np.std(draws) - 2.0) < 0.1
    lag_one = np.corrcoef(draws[:, :-1].ravel(), draws[:, 1:].ravel())[0, 1]
    assert abs(lag_one - CALIBRATION_ERROR_RHO) < 0.03


def test_the_future_branch_gets_the_error_standardised_and_only_where_present() -> None:
    features = FeatureConfig(
        window=24, horizon=HORIZON, stream=False, time_of_day=False, day_of_week=False,
        network_covariates=("temperature",), covariate_centers=(50.0,), covariate_spreads=(4.0,),
    )
    rows = np.array([10, 11])
    future = np.zeros((2, HORIZON, COLUMNS_PER_COVARIATE), dtype=np.float32)
    future[:, :, 1] = 1.0  # present
    future[1, 5:8, 1] = 0.0  # three missing readings of the second origin
    moved = _with_future_error(future.reshape(2, -1), rows, "load", features, _error(2.0))
    moved = moved.reshape(2, HORIZON, COLUMNS_PER_COVARIATE)
    for row, end in enumerate(rows):
        expected = _error(2.0).draw("load", int(end))["temperature"] / 4.0
        present = future[row, :, 1] > 0
        np.testing.assert_allclose(moved[row, present, 0], expected[present], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(moved[row, ~present, 0], 0.0)
    np.testing.assert_array_equal(moved[:, :, 1], future[:, :, 1])  # flags untouched
