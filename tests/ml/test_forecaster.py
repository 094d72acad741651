"""The numpy forecaster reproduces the Keras network's own forecasts, and its state round-trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.ml.data import SeriesData
from app.ml.features import calendar, stream_inputs, to_values, window_batch
from app.ml.forecaster import Forecaster
from tests.ml.conftest import CASES

ATOL = 1e-5
WINDOW_CASES = [name for name, spec in CASES.items() if not spec.stateful and spec.deseasonalize == "none"]
STREAM_CASES = [name for name, spec in CASES.items() if spec.stateful]


def _keras(network, x: np.ndarray) -> np.ndarray:
    return np.asarray(network(x, training=False))


@pytest.mark.parametrize("name", WINDOW_CASES)
def test_window_forecast_matches_keras(name: str, trained_models: dict, series: SeriesData) -> None:
    trained, directory = trained_models[name]
    forecaster = Forecaster.load(directory)
    scale = trained.scales[series.name]
    ends = np.array([100, 250, 479])
    cal = calendar(series.timestamps, trained.features)
    x, _ = window_batch(series.values / scale, cal, ends, trained.features, targets=False)
    expected = to_values(_keras(trained.network, x), series.values[ends], scale)
    for end, want in zip(ends, expected, strict=True):
        got = forecaster.forecast(
            series.values[: end + 1], series.timestamps[: end + 1], trained.spec.horizon
        )
        np.testing.assert_allclose(got.mean, want, atol=ATOL * scale)
        assert got.timestamps[0] == series.timestamps[end] + pd.Timedelta("1h")


@pytest.mark.parametrize("name", STREAM_CASES)
def test_stream_state_matches_keras(name: str, trained_models: dict, series: SeriesData) -> None:
    trained, directory = trained_models[name]
    forecaster = Forecaster.load(directory)
    scale = trained.scales[series.name]
    x = stream_inputs(series.values / scale, calendar(series.timestamps, trained.features))
    per_step = _keras(trained.network, x[None])[0]  # (T, H): forecast made at every reading
    state = forecaster.initial_state()
    state = forecaster.warm(series.values[:300], series.timestamps[:300], state)
    np.testing.assert_allclose(state["output"], per_step[299], atol=ATOL)
    for i in range(300, 310):  # then one reading at a time, as a live stream does
        state = forecaster.step(state, float(series.values[i]), series.timestamps[i])
        np.testing.assert_allclose(state["output"], per_step[i], atol=ATOL)
    got = forecaster.forecast_from_state(state, trained.spec.horizon)
    np.testing.assert_allclose(
        got.mean, to_values(per_step[309], series.values[309], scale), atol=ATOL * scale
    )


@pytest.mark.parametrize("name", ["lstm_window", "lstm_stateful", "gru_bidirectional"])
def test_state_round_trips_through_json_exactly(name: str, trained_models: dict, series: SeriesData) -> None:
    forecaster = Forecaster.load(trained_models[name][1])
    state = forecaster.warm(series.values[:200], series.timestamps[:200], forecaster.initial_state())
    restored = json.loads(json.dumps(state))
    assert restored == state
    a = forecaster.step(state, 101.5, series.timestamps[200])
    b = forecaster.step(restored, 101.5, series.timestamps[200])
    assert a == b
    before = json.dumps(a)
    forecaster.forecast_from_state(a, 30)
    assert json.dumps(a) == before  # forecasting leaves the state alone


@pytest.mark.parametrize("name", ["lstm_window", "lstm_stateful"])
def test_long_horizons_roll_out_and_intervals_widen(
    name: str, trained_models: dict, series: SeriesData
) -> None:
    trained, directory = trained_models[name]
    forecaster = Forecaster.load(directory)
    out = forecaster.forecast(series.values, series.timestamps, 50, levels=(80, 95))
    head = trained.spec.horizon
    assert len(out.mean) == 50 and np.isfinite(out.mean).all()
    assert (out.upper[95] >= out.upper[80]).all() and (out.lower[95] <= out.lower[80]).all()
    width = out.upper[80] - out.mean
    np.testing.assert_allclose(
        width[:head], np.asarray(trained.conformal["80"]) * trained.scales[series.name]
    )
    assert np.all(np.diff(width[head - 1 :]) > 0)
    # The first head of a rollout is the direct forecast itself.
    short = forecaster.forecast(series.values, series.timestamps, head)
    np.testing.assert_allclose(out.mean[:head], short.mean)
    json.dumps(out.to_dict())
    with pytest.raises(ValueError, match="`levels`"):
        forecaster.forecast(series.values, series.timestamps, 5, levels=(70,))


@pytest.mark.parametrize("name", ["lstm_window", "lstm_stateful"])
def test_missing_readings_are_filled_by_the_model(
    name: str, trained_models: dict, series: SeriesData
) -> None:
    forecaster = Forecaster.load(trained_models[name][1])
    state = forecaster.warm(series.values[:200], series.timestamps[:200], forecaster.initial_state())
    skipped = forecaster.step(state, float(series.values[205]), series.timestamps[205])
    assert skipped["last_timestamp"] == series.timestamps[205].isoformat()
    assert skipped["readings"] == state["readings"] + 6
    with pytest.raises(ValueError, match="expected one after"):
        forecaster.step(skipped, 1.0, series.timestamps[205])
    values = series.values[:300].copy()
    values[280:290] = np.nan  # too long to interpolate: filled with forecasts
    out = forecaster.forecast(values, series.timestamps[:300], 3)
    assert np.isfinite(out.mean).all()


def test_forecaster_never_imports_tensorflow(trained_models: dict) -> None:
    directory = Path(trained_models["lstm_stateful"][1])
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from app.ml.forecaster import Forecaster\n"
        f"f = Forecaster.load({str(directory)!r})\n"
        "ts = pd.date_range('2024-01-01', periods=50, freq='h')\n"
        "f.forecast(np.sin(np.arange(50.0)), ts, 5)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)


@pytest.mark.parametrize("name", ["lstm_window", "lstm_stateful", "gru_bidirectional", "gru_mstl"])
def test_advance_matches_step_by_step(name: str, trained_models: dict, series: SeriesData) -> None:
    """The vectorised batch path ends in the same state with the same one-step forecasts."""
    forecaster = Forecaster.load(trained_models[name][1])
    start = forecaster.warm(series.values[:100], series.timestamps[:100], forecaster.initial_state())
    fast_state, fast = forecaster.advance(series.values[100:160], series.timestamps[100:160], start)
    state, slow = start, []
    for i in range(100, 160):
        state = forecaster.step(state, float(series.values[i]), series.timestamps[i])
        slow.append(forecaster.forecast_from_state(state, 1, ()).mean[0])
    np.testing.assert_allclose(fast, slow, rtol=1e-10)
    assert fast_state["last_timestamp"] == state["last_timestamp"]
    np.testing.assert_allclose(
        np.asarray(fast_state.get("output", fast_state.get("values")), dtype=float),
        np.asarray(state.get("output", state.get("values")), dtype=float),
        rtol=1e-10,
    )


def test_deseasonalized_forecast_matches_keras(trained_models: dict, series: SeriesData) -> None:
    """Serving refits MSTL on the readings before the day of the first forecast step, as here."""
    from app.ml.seasonal import decompose, extend, usable_periods

    trained, directory = trained_models["gru_mstl"]
    forecaster = Forecaster.load(directory)
    features = trained.features
    assert features.seasonal_periods == (24, 168) and not features.time_of_day
    scale, window, horizon = trained.scales[series.name], features.window, features.horizon
    for end in (200, 311, 479):
        stop = (end + 1) // 24 * 24  # midnight before the first forecast step (hourly from midnight)
        start = max(0, stop - features.fit_steps)
        periods = usable_periods(features.seasonal_periods, stop - start)
        path = extend(decompose(series.values[start:stop], periods), periods, end + horizon + 1 - stop)
        seasonal = path[end - window + 1 - start :]
        z = series.values[end - window + 1 : end + 1] - seasonal[:window]
        x = ((z - z[-1]) / scale)[None, :, None].astype(np.float32)
        want = seasonal[window:] + z[-1] + scale * _keras(trained.network, x)[0].astype(np.float64)
        got = forecaster.forecast(series.values[: end + 1], series.timestamps[: end + 1], horizon)
        np.testing.assert_allclose(got.mean, want, atol=ATOL * scale)
