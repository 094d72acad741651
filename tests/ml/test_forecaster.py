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
from app.ml.features import calendar, to_values, window_batch
from app.ml.forecaster import Forecaster
from app.ml.stream_seasonal import change_inputs
from tests.ml.conftest import CASES

ATOL = 1e-5
WINDOW_CASES = [name for name, spec in CASES.items() if not spec.stateful and spec.deseasonalize == "none"]
STREAM_CASES = [name for name, spec in CASES.items() if spec.stateful]
RAW_STREAM_CASES = [name for name in STREAM_CASES if CASES[name].deseasonalize == "none"]


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


def _output(forecaster: Forecaster, state: dict) -> np.ndarray:
    """The network's output after the state's last reading, recomputed from its h."""
    return forecaster.network.output(forecaster.network.state_from_lists(state["network"]))[0]


@pytest.mark.parametrize("name", RAW_STREAM_CASES)
def test_stream_state_matches_keras(name: str, trained_models: dict, series: SeriesData) -> None:
    trained, directory = trained_models[name]
    forecaster = Forecaster.load(directory)
    scale = trained.scales[series.name]
    change = change_inputs(series.values, scale, None)[:, None]
    x = np.concatenate([change, calendar(series.timestamps, trained.features)], axis=1).astype(np.float32)
    per_step = _keras(trained.network, x[None])[0]  # (T, H): forecast made at every reading
    state = forecaster.initial_state()
    state = forecaster.warm(series.values[:300], series.timestamps[:300], state)
    np.testing.assert_allclose(_output(forecaster, state), per_step[299], atol=ATOL)
    for i in range(300, 310):  # then one reading at a time, as a live stream does
        state = forecaster.step(state, float(series.values[i]), series.timestamps[i])
        np.testing.assert_allclose(_output(forecaster, state), per_step[i], atol=ATOL)
    got = forecaster.forecast_from_state(state, trained.spec.horizon)
    np.testing.assert_allclose(
        got.mean, to_values(per_step[309], series.values[309], scale), atol=ATOL * scale
    )


def test_deseasonalized_stream_matches_keras_on_the_fits_made_ahead_of_each_day(
    trained_models: dict, series: SeriesData
) -> None:
    """Each reading is read against the MSTL fit made for its day, ahead: on the readings up to
    the lead before the day; the forecast puts the fit of the first forecast step back:
    y_t + S(t+k) - S(t) + scale * output."""
    from app.ml.seasonal import decompose, usable_periods
    from app.ml.stream_seasonal import FIT_LEAD_S

    trained, directory = trained_models["gru_stream_mstl"]
    forecaster = Forecaster.load(directory)
    features, scale = trained.features, trained.scales[series.name]
    values, horizon = series.values, trained.spec.horizon

    def fit(boundary: int) -> np.ndarray:
        """The seasonal component of the day starting at `boundary`, continued from a fit on the
        readings up to FIT_LEAD_S before the day (hourly readings)."""
        stop = boundary - FIT_LEAD_S // 3600
        history = values[max(0, stop - features.fit_steps) : stop]
        periods = usable_periods(features.seasonal_periods, len(history))
        components = decompose(history, periods)
        pairs = list(zip(components, periods, strict=True))
        return lambda at: sum(c[len(history) - p :][(at - stop) % p] for c, p in pairs)

    first, last = 360, 430  # hourly from midnight: the day of reading t starts at t // 24 * 24
    z = np.array([values[t] - fit(t // 24 * 24)(t) for t in range(first, last + 1)])
    change = np.diff(z / scale, prepend=z[0] / scale)[:, None].astype(np.float32)
    per_step = _keras(trained.network, change[None])[0]
    origin = last
    seasonal = fit((origin + 1) // 24 * 24)
    ahead = np.array([seasonal(origin + k) - seasonal(origin) for k in range(1, horizon + 1)])
    want = values[origin] + ahead + scale * per_step[-1].astype(np.float64)

    source = forecaster.history_seasonal(values, series.timestamps)
    state = forecaster.warm(values[first : last + 1], series.timestamps[first : last + 1],
                            forecaster.initial_state(), seasonal=source)
    got = forecaster.forecast_from_state(state, horizon, seasonal=source)
    np.testing.assert_allclose(got.mean, want, atol=ATOL * scale)
    # A stream's state is its h, its last reading and z, and its last timestamp: no history.
    assert set(state) == {"kind", "series", "network", "last_value", "last_z", "last_timestamp", "readings"}
    with pytest.raises(TypeError, match="seasonal"):
        forecaster.forecast_from_state(state, horizon)


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
    if forecaster.is_stream:
        np.testing.assert_allclose(fast_state["network"], state["network"], rtol=1e-10)
    else:
        np.testing.assert_allclose(fast_state["values"], state["values"], rtol=1e-10)


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


def test_stream_states_stored_before_last_z_existed_still_step(
    trained_models: dict, series: SeriesData
) -> None:
    """A raw stream model's state saved with its forecast ("output") and no "last_z" steps on
    exactly as the state of today."""
    forecaster = Forecaster.load(trained_models["lstm_stateful"][1])
    state = forecaster.warm(series.values[:200], series.timestamps[:200], forecaster.initial_state())
    old = {k: v for k, v in state.items() if k != "last_z"}
    old["output"] = _output(forecaster, state).tolist()
    np.testing.assert_allclose(
        forecaster.forecast_from_state(old, 5).mean, forecaster.forecast_from_state(state, 5).mean
    )
    assert forecaster.step(old, 101.5, series.timestamps[200]) == forecaster.step(
        state, 101.5, series.timestamps[200]
    )


@pytest.mark.parametrize("name", ["lstm_stateful", "gru_stateful", "gru_stream_mstl"])
def test_stepping_many_streams_at_once_matches_each_alone(
    name: str, trained_models: dict, series: SeriesData
) -> None:
    """`step_streams` (a fleet's readings in one pass) gives each stream what `advance` gives it."""
    forecaster = Forecaster.load(trained_models[name][1])
    source = None
    if forecaster.needs_seasonal:
        source = forecaster.history_seasonal(series.values, series.timestamps)
    # Streams at different points of the series, so states, days and fits all differ; one
    # stops right before midnight, where the next step's fit is the next day's.
    ends = [150, 239, 300, 311, 400]
    states = [
        forecaster.warm(series.values[:e], series.timestamps[:e], forecaster.initial_state(), seasonal=source)
        for e in ends
    ]
    values = np.array([series.values[end] + 3.0 * k for k, end in enumerate(ends)])
    stamps = series.timestamps[ends]
    stepped, means = forecaster.step_streams(states, values, stamps.asi8, [source] * len(ends))
    for k in range(len(ends)):
        alone, mean = forecaster.advance(values[k : k + 1], stamps[k : k + 1], states[k], seasonal=source)
        np.testing.assert_allclose(means[k], mean[0], rtol=1e-12)
        np.testing.assert_allclose(stepped[k]["network"], alone["network"], rtol=1e-12, atol=1e-15)
        assert {key: v for key, v in stepped[k].items() if key != "network"} == {
            key: v for key, v in alone.items() if key != "network"
        }


@pytest.mark.parametrize("name", RAW_STREAM_CASES)
def test_stream_rollout_matches_keras_fed_its_own_forecasts(
    name: str, trained_models: dict, series: SeriesData
) -> None:
    """A rollout beyond the head is Keras run over the history and its own forecasts fed back
    as readings, a head at a time (7 steps: a head of 2 ends in a partial block)."""
    trained, directory = trained_models[name]
    forecaster = Forecaster.load(directory)
    scale, head, horizon = trained.scales[series.name], trained.spec.horizon, 7
    values, stamps = series.values[:300], series.timestamps[:300]
    cal = calendar(stamps, trained.features)
    x = np.concatenate([change_inputs(values, scale, None)[:, None], cal], axis=1)
    want: list[float] = []
    last = float(values[-1])
    while len(want) < horizon:
        output = _keras(trained.network, x[None].astype(np.float32))[0, -1].astype(np.float64)
        block = last + scale * output
        want += block.tolist()
        ahead = pd.date_range(stamps[-1], periods=len(want) + 1, freq="h")[-head:]
        cal = calendar(ahead, trained.features)
        fed = np.concatenate([change_inputs(block, scale, last)[:, None], cal], axis=1)
        x, last = np.concatenate([x, fed]), float(block[-1])

    state = forecaster.warm(values, stamps, forecaster.initial_state())
    got = forecaster.forecast_from_state(state, horizon)
    np.testing.assert_allclose(got.mean, want[:horizon], atol=ATOL * scale)


def _roll_block_by_block(forecaster: Forecaster, state: dict, horizon: int, source: object) -> np.ndarray:
    """The rollout as whole-network calls a head at a time (the arithmetic before `Stepper`)."""
    from app.ml.stream_seasonal import NO_SEASON, boundaries

    source = source or NO_SEASON
    scale, head = forecaster.scales[state["series"]], forecaster.network.output_size
    step_ns = forecaster.step_size.value
    last_ns = pd.Timestamp(state["last_timestamp"]).value
    future = last_ns + step_ns * np.arange(1, -(-horizon // head) * head + 1, dtype=np.int64)
    first = int(boundaries(future[:1], forecaster.spec.steps_per_day, forecaster.features.timezone)[0])
    seasonal = source.cycles(first).at((np.concatenate([[last_ns], future]) - first) // step_ns)
    inputs = calendar(future, forecaster.features)
    net = forecaster.network.state_from_lists(state["network"])
    last_value, last_z = float(state["last_value"]), state["last_z"]
    mean, done = [], 0
    while True:
        output = np.asarray(forecaster.network.output(net)[0], dtype=np.float64)
        block = last_value + (seasonal[done + 1 : done + 1 + head] - seasonal[done]) + scale * output
        mean.append(block)
        if done + head >= horizon:
            return np.concatenate(mean)[:horizon]
        z = block - seasonal[done + 1 : done + 1 + head]
        x = np.concatenate([change_inputs(z, scale, last_z)[:, None], inputs[done : done + head]], axis=1)
        _, net = forecaster.network.run(x[None], net, return_sequences=True)
        last_value, last_z = float(block[-1]), float(z[-1])
        done += head


@pytest.mark.parametrize("name", STREAM_CASES)
@pytest.mark.parametrize("end", [200, 311])
def test_stream_rollout_equals_whole_network_calls(
    name: str, end: int, trained_models: dict, series: SeriesData
) -> None:
    """Stepping with the calendar's projection made up front changes only the rounding of the
    input projection: over 60 steps, across a day's end, the forecasts agree to ~1e-12."""
    forecaster = Forecaster.load(trained_models[name][1])
    source = None
    if forecaster.needs_seasonal:
        source = forecaster.history_seasonal(series.values, series.timestamps)
    state = forecaster.warm(
        series.values[:end], series.timestamps[:end], forecaster.initial_state(), seasonal=source
    )
    for horizon in (1, 5, 60):
        got = forecaster.forecast_from_state(state, horizon, seasonal=source).mean
        want = _roll_block_by_block(forecaster, state, horizon, source)
        assert got.shape == (horizon,)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * forecaster.scales[series.name])
