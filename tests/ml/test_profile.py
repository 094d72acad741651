"""The regression profile, and profile models served in numpy exactly as Keras computes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.ml.calendar import CalendarSpec, SpecialDay
from app.ml.covariates import CovariateCoverageError
from app.ml.data import SeriesData
from app.ml.forecaster import Forecaster
from app.ml.profile import RegressionProfile, fit_profile
from app.ml.spec import ModelSpec
from app.ml.stream_seasonal import change_inputs
from tests.ml.conftest import TINY, make_series

ATOL = 1e-5
US = CalendarSpec("US")


def _with_temperature(n: int = 480, seed: int = 0) -> SeriesData:
    base = make_series(n, seed=seed)
    t = np.arange(n)
    rng = np.random.default_rng(seed + 1)
    temperature = 10 + 6 * np.sin(2 * np.pi * (t - 6) / 24) + np.cumsum(rng.normal(0, 0.3, n))
    values = base.values + 2.0 * temperature
    return dataclasses.replace(base, values=values, covariates={"temperature": temperature}, calendar=US)


def test_profile_recovers_a_temperature_effect_and_round_trips() -> None:
    n = 24 * 60
    ts = pd.date_range("2024-01-01", periods=n, freq="h")
    rng = np.random.default_rng(0)
    temperature = 15 + 8 * np.sin(2 * np.pi * np.arange(n) / (24 * 9)) + rng.normal(0, 1, n)
    y = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 24) + 3 * temperature
    profile = fit_profile(y, ts.asi8, {"temperature": temperature}, US, steps_per_day=24)
    path = profile.path(ts.asi8, {"temperature": temperature}, US)
    np.testing.assert_allclose(path[24:], y[24:], atol=1e-3)
    again = RegressionProfile.from_dict(profile.to_dict())
    np.testing.assert_array_equal(again.path(ts.asi8, {"temperature": temperature}, US), path)
    # A missing reading is not invented: its terms take their training mean at that hour.
    gap = temperature.copy()
    gap[500] = np.nan
    assert np.isfinite(profile.path(ts.asi8, {"temperature": gap}, US)).all()


@pytest.fixture(scope="module")
def profile_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from app.ml.artifacts import save_artifacts
    from app.ml.training import train

    series = _with_temperature()
    root = tmp_path_factory.mktemp("profile_models")
    tiny = {**TINY, "deseasonalize": "mstl"}
    specs = {
        "stream": ModelSpec(cell="gru", stateful=True, horizon=4, chunk=12, **tiny),
        "window": ModelSpec(cell="gru", stateful=False, horizon=4, **tiny),
    }
    out = {}
    for name, spec in specs.items():
        trained = train(spec, [series])
        assert trained.features.profile and trained.features.covariates == ("temperature",)
        out[name] = (trained, save_artifacts(trained, Path(root) / name), series)
    return out


def _keras(network, x: np.ndarray) -> np.ndarray:
    return np.asarray(network(x, training=False))


def _horizon_covariates(series: SeriesData, end: int, horizon: int) -> dict[str, np.ndarray]:
    return {"temperature": series.covariates["temperature"][: end + 1 + horizon]}


def test_profile_stream_forecast_matches_keras(profile_models: dict) -> None:
    """Every reading is read against the profile; the forecast is y_t + P(t+k) - P(t) + scale * out."""
    trained, directory, series = profile_models["stream"]
    forecaster = Forecaster.load(directory)
    profile = trained.profiles[series.name]
    scale, horizon = trained.scales[series.name], trained.spec.horizon
    path = profile.path(series.timestamps.asi8, series.covariates, US)
    end = 430
    warm = forecaster.stream_warm_steps
    first = end + 1 - warm
    z = series.values[first : end + 1] - path[first : end + 1]
    change = change_inputs(z, scale, None)[:, None].astype(np.float32)
    per_step = _keras(trained.network, change[None])[0]
    want = series.values[end] + path[end + 1 : end + 1 + horizon] - path[end] + scale * per_step[-1]
    got = forecaster.forecast(
        series.values[: end + 1], series.timestamps[: end + 1], horizon,
        covariates=_horizon_covariates(series, end, horizon), calendar=US,
    )
    np.testing.assert_allclose(got.mean, want, atol=ATOL * scale)


def test_profile_window_forecast_matches_keras(profile_models: dict) -> None:
    trained, directory, series = profile_models["window"]
    forecaster = Forecaster.load(directory)
    path = trained.profiles[series.name].path(series.timestamps.asi8, series.covariates, US)
    scale, window, horizon = trained.scales[series.name], trained.spec.window, trained.spec.horizon
    end = 311
    z = series.values[end - window + 1 : end + 1] - path[end - window + 1 : end + 1]
    x = ((z - z[-1]) / scale)[None, :, None].astype(np.float32)
    want = path[end + 1 : end + 1 + horizon] + z[-1] + scale * _keras(trained.network, x)[0]
    got = forecaster.forecast(
        series.values[: end + 1], series.timestamps[: end + 1], horizon,
        covariates=_horizon_covariates(series, end, horizon), calendar=US,
    )
    np.testing.assert_allclose(got.mean, want, atol=ATOL * scale)


@pytest.mark.parametrize("name", ["stream", "window"])
def test_a_covariate_short_of_the_horizon_is_refused_by_name(profile_models: dict, name: str) -> None:
    _, directory, series = profile_models[name]
    forecaster = Forecaster.load(directory)
    end, horizon = 300, 4
    temperature = series.covariates["temperature"][: end + 1 + horizon].copy()
    temperature[-2:] = np.nan
    with pytest.raises(CovariateCoverageError, match="'temperature' covers until") as caught:
        forecaster.forecast(series.values[: end + 1], series.timestamps[: end + 1], horizon,
                            covariates={"temperature": temperature}, calendar=US)
    assert caught.value.covered_until_s == series.timestamps[end + 2].value / 1e9
    with pytest.raises(ValueError, match="expected values of \\['temperature'\\]"):
        forecaster.forecast(series.values[: end + 1], series.timestamps[: end + 1], horizon, calendar=US)


def test_a_special_day_added_after_training_moves_the_forecast(profile_models: dict) -> None:
    _, directory, series = profile_models["stream"]
    forecaster = Forecaster.load(directory)
    end, horizon = 407, 4  # the origin is 23:00; the horizon lies on the next day
    day = (series.timestamps[end] + pd.Timedelta("1h")).date()
    args = (series.values[: end + 1], series.timestamps[: end + 1], horizon)
    covariates = _horizon_covariates(series, end, horizon)
    plain = forecaster.forecast(*args, covariates=covariates, calendar=US).mean
    shutdown = dataclasses.replace(US, special_days=(SpecialDay(day, "shutdown"),))
    moved = forecaster.forecast(*args, covariates=covariates, calendar=shutdown).mean
    assert not np.allclose(plain, moved)


def test_auto_may_drop_covariates_only_when_the_spec_leaves_them_open() -> None:
    from app.ml.search import WITHOUT_COVARIATES, candidate_specs

    open_spec = ModelSpec(auto=True)
    assert WITHOUT_COVARIATES in [change for change, _ in candidate_specs(open_spec, covariates=True)]
    assert WITHOUT_COVARIATES not in [change for change, _ in candidate_specs(open_spec, covariates=False)]
    chosen = ModelSpec(auto=True, covariates=["temperature"])
    specs = candidate_specs(chosen, covariates=True)
    assert all(spec.covariates == ["temperature"] for _, spec in specs)


def test_a_spec_naming_a_covariate_the_series_lack_is_refused() -> None:
    from app.ml.data import TrainingDataError
    from app.ml.training import prepare

    with pytest.raises(TrainingDataError, match="'humidity'"):
        prepare(ModelSpec(covariates=["humidity"]), [_with_temperature()])
    resolved, _ = prepare(ModelSpec(covariates=[]), [_with_temperature()])
    assert resolved.covariates == ()
    resolved, _ = prepare(ModelSpec(), [_with_temperature()])
    assert resolved.covariates == ("temperature",)


def test_a_profile_stream_steps_reading_by_reading_as_its_forecast_warms(profile_models: dict) -> None:
    """A live stream builds a source per reading (a day before it, one step after): the state and
    the forecast match the forecast from history."""
    _, directory, series = profile_models["stream"]
    forecaster = Forecaster.load(directory)
    assert forecaster.uses_profile and forecaster.covariates == ("temperature",)
    ns, temperature = series.timestamps.asi8, series.covariates["temperature"]
    end, horizon, live = 430, 4, 10
    first = end + 1 - forecaster.stream_warm_steps

    def source(start: int, stop: int):
        return forecaster.profile_source(ns[start:stop], {"temperature": temperature[start:stop]}, US)

    state = forecaster.warm(series.values[first : end + 1 - live], series.timestamps[first : end + 1 - live],
                            forecaster.initial_state(), seasonal=source(0, end + 1))
    for i in range(end + 1 - live, end + 1):
        state = forecaster.step(state, float(series.values[i]), series.timestamps[i],
                                seasonal=source(i - 24, i + 2))
    got = forecaster.forecast_from_state(state, horizon, seasonal=source(end - 24, end + 1 + horizon))
    want = forecaster.forecast(series.values[: end + 1], series.timestamps[: end + 1], horizon,
                               covariates=_horizon_covariates(series, end, horizon), calendar=US)
    np.testing.assert_allclose(got.mean, want.mean, atol=ATOL * forecaster.scales[series.name])
    with pytest.raises(ValueError, match="profile_source"):
        forecaster.seasonal_fitter  # noqa: B018


def test_holidays_alone_keep_the_mstl_model() -> None:
    """Without covariates a profile lost to MSTL on BigDEAL; holidays alone change nothing."""
    from app.ml.training import train

    series = dataclasses.replace(_with_temperature(), covariates={})
    spec = ModelSpec(cell="gru", stateful=True, horizon=4, chunk=12, **{**TINY, "deseasonalize": "mstl"})
    trained = train(spec, [series])
    assert not trained.features.profile and trained.features.seasonal_periods and not trained.profiles


@pytest.mark.parametrize("name", ["stream", "window"])
def test_a_forecast_reads_the_profile_over_its_span_only_and_equal_to_the_whole(
    profile_models: dict, name: str
) -> None:
    """The profile of a forecast from a long history covers only the steps the model reads, and
    there it equals the profile over the whole history, the past-day terms included."""
    trained, directory, series = profile_models[name]
    forecaster = Forecaster.load(directory)
    end, horizon = 430, trained.spec.horizon
    covariates = _horizon_covariates(series, end, horizon)
    stamps = series.timestamps[: end + 1]
    source = forecaster._forecast_profile(stamps, horizon, covariates, US, None)
    span = forecaster.profile_history_steps
    assert span < end + 1 and len(source.path) == span + horizon
    ns = np.concatenate([stamps.asi8, series.timestamps.asi8[end + 1 : end + 1 + horizon]])
    whole = trained.profiles[series.name].path(ns, covariates, US)
    day = round(trained.spec.steps_per_day)  # the lookback of the past-day terms
    read = len(source.path) - day
    np.testing.assert_allclose(source.path[-read:], whole[-read:], rtol=1e-12, atol=1e-9)
    assert not np.allclose(source.path[:day], whole[-len(source.path) : -read])
    # The forecast reads nothing before the span: from the whole profile it is the same.
    full_source = forecaster.profile_source(ns, covariates, US)
    history = (series.values[: end + 1], stamps)
    if forecaster.is_stream:
        kept = forecaster.stream_warm_steps
        history = (history[0][-kept:], history[1][-kept:])
    state = forecaster.warm(*history, forecaster.initial(), seasonal=full_source)
    want = forecaster.forecast_from_state(state, horizon, seasonal=full_source)
    got = forecaster.forecast(series.values[: end + 1], stamps, horizon, covariates=covariates, calendar=US)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", ["stream", "window"])
def test_a_profile_model_calibrates_on_the_training_parts_end_too(profile_models: dict, name: str) -> None:
    """480 hourly readings: the validation part's second half (24 readings) is short of
    CALIBRATION_MIN_DAYS, so the training part's second half (192 readings) calibrates too."""
    trained = profile_models[name][0]
    horizon = trained.spec.horizon
    half = 24 - horizon + 1
    assert trained.metrics["calibration_origins"] == half + 192 - horizon + 1
    assert trained.metrics["validation_origins"] <= half


def test_the_calibrated_covariate_error_follows_its_day_to_day_change() -> None:
    """A covariate that repeats every day is known a day ahead: no simulated error. One that
    wanders is not, whatever its yearly spread."""
    from app.ml.training import _day_change_spread

    hours = np.arange(24 * 60)
    daily = 10 + 8 * np.sin(2 * np.pi * hours / 24)
    assert _day_change_spread(daily, 24) == pytest.approx(0.0, abs=1e-9)
    wandering = daily + np.cumsum(np.random.default_rng(0).normal(0, 1, len(hours)))
    assert _day_change_spread(wandering, 24) == pytest.approx(np.sqrt(24), rel=0.2)
    with_gaps = wandering.copy()
    with_gaps[::7] = np.nan  # missing readings are left out, not invented
    assert _day_change_spread(with_gaps, 24) == pytest.approx(_day_change_spread(wandering, 24), rel=0.1)
