"""The future covariates' branch: numpy serving mirrors the Keras graph `build_network` makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ml.architectures import build_network
from app.ml.calendar import CalendarSpec
from app.ml.engine import NumpyNetwork
from app.ml.spec import ModelSpec, resolve_spec
from tests.ml.conftest import TINY

ATOL = 1e-5
INPUTS = 4
FUTURE = 12  # 6 steps x (value, present) of one covariate
STEPS = 20
US = CalendarSpec("US")


def _randomized(spec_fields: dict[str, object], *, seed: int) -> tuple[object, object]:
    spec = resolve_spec(ModelSpec(**spec_fields), "h")  # type: ignore[arg-type]
    model = build_network(spec, INPUTS, n_future=FUTURE)
    rng = np.random.default_rng(seed)
    # Non-zero weights everywhere: a zero-initialised head would hide a wrong join.
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    return spec, model


@pytest.mark.parametrize(
    "fields",
    [
        {"stateful": False, "horizon": 6, "cell": "gru"},
        {"stateful": False, "horizon": 6, "cell": "lstm", "layers": 2, "dropout": 0.2},
        {"stateful": False, "horizon": 6, "cell": "gru", "bidirectional": True},
    ],
    ids=["gru", "lstm-2-dropout", "bidirectional"],
)
def test_window_network_with_future_branch_matches_keras(fields: dict[str, object], tmp_path: Path) -> None:
    _, model = _randomized(fields, seed=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, STEPS, INPUTS)).astype("float32")
    future = rng.normal(size=(5, FUTURE)).astype("float32")
    expected = np.asarray(model([x, future], training=False))

    network = NumpyNetwork.from_keras(model)
    got, _ = network.run(x, future=future)

    assert network.future_size == FUTURE
    np.testing.assert_allclose(got, expected, atol=ATOL)
    network.save(tmp_path)
    again, _ = NumpyNetwork.load(tmp_path).run(x, future=future)
    np.testing.assert_array_equal(again, got)
    # The branch matters: other future values give another forecast.
    other, _ = network.run(x, future=future + 1.0)
    assert np.abs(other - got).max() > 1e-3


def test_stream_network_with_future_branch_matches_keras_at_every_step() -> None:
    _, model = _randomized({"stateful": True, "horizon": 6, "cell": "gru"}, seed=5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, STEPS, INPUTS)).astype("float32")
    future = rng.normal(size=(2, STEPS, FUTURE)).astype("float32")
    expected = np.asarray(model([x, future], training=False))

    network = NumpyNetwork.from_keras(model)
    sequence, state = network.run(x, return_sequences=True, future=future)

    np.testing.assert_allclose(sequence, expected, atol=ATOL)
    # A stream's forecast is recomputed from its state and the horizon's covariates.
    np.testing.assert_allclose(network.output(state, future[:, -1]), expected[:, -1], atol=ATOL)


def test_future_inputs_are_required_and_checked() -> None:
    _, model = _randomized({"stateful": False, "horizon": 6}, seed=7)
    network = NumpyNetwork.from_keras(model)
    x = np.zeros((1, STEPS, INPUTS))
    with pytest.raises(ValueError, match="pass `future`"):
        network.run(x)
    with pytest.raises(ValueError, match=r"expected \(1, 12\)"):
        network.run(x, future=np.zeros((1, 5)))
    plain = NumpyNetwork.from_keras(build_network(resolve_spec(ModelSpec(stateful=False), "h"), INPUTS))
    with pytest.raises(ValueError, match="without a future branch"):
        plain.run(x, future=np.zeros((1, FUTURE)))


@pytest.fixture(scope="module")
def network_covariate_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from app.ml.artifacts import save_artifacts
    from app.ml.training import train
    from tests.ml.test_profile import _with_temperature

    series = _with_temperature()
    root = tmp_path_factory.mktemp("network_covariates")
    out = {}
    for name, inputs, deseasonalize, stateful in (
        ("network", "network", "mstl", None), ("both", "both", "mstl", None),
        ("raw", "network", "none", None), ("stream", "network", "none", True),
    ):
        fields = {**TINY, "deseasonalize": deseasonalize}
        spec = ModelSpec(cell="gru", horizon=4, covariate_inputs=inputs, stateful=stateful, **fields)
        trained = train(spec, [series])
        out[name] = (trained, save_artifacts(trained, Path(root) / name), series)
    return out


@pytest.mark.parametrize("inputs", ["network", "both", "raw"])
def test_a_network_covariate_forecast_matches_keras(network_covariate_models: dict, inputs: str) -> None:
    """The forecast reads the window's temperatures and the horizon's through the branch, in numpy
    exactly as Keras computes them."""
    from app.ml.features import future_batch, origin_batch, step_inputs
    from app.ml.forecaster import Forecaster
    from app.ml.profile import PathFitter, ProfileSource
    from app.ml.seasonal import SeasonalFitter

    trained, directory, series = network_covariate_models[inputs]
    features = trained.features
    assert not trained.spec.stateful  # network covariates: a window model by default
    assert features.network_covariates == ("temperature",)
    assert features.profile is (inputs == "both")
    assert features.input_names[-2:] == ["temperature", "temperature_present"]
    forecaster = Forecaster.load(directory)
    assert forecaster.covariates == ("temperature",)
    scale, horizon = trained.scales[series.name], trained.spec.horizon
    end = 400
    covariates = {"temperature": series.covariates["temperature"][: end + 1 + horizon]}
    stamps = series.timestamps[: end + 1 + horizon]
    steps = step_inputs(stamps, features, covariates)
    if features.profile:
        path = trained.profiles[series.name].path(stamps.asi8, covariates, US)
        step_ns = int(stamps.asi8[1] - stamps.asi8[0])
        fitter: object = PathFitter(ProfileSource(int(stamps.asi8[0]), step_ns, path))
    elif features.mstl:
        fitter = SeasonalFitter(features.seasonal())
    else:
        fitter = None
    values = series.values[: end + 1]
    origin = np.array([end])
    x, base = origin_batch(values, steps[: end + 1], stamps[: end + 1], origin, scale, features, fitter)
    future = future_batch(steps, origin, features)
    want = base[0] + scale * np.asarray(trained.network([x, future], training=False))[0]

    got = forecaster.forecast(values, stamps[: end + 1], horizon, covariates=covariates, calendar=US)

    np.testing.assert_allclose(got.mean, want, atol=ATOL * scale)
    # The network reads the horizon's temperature: a warmer horizon moves the forecast.
    warmer = {"temperature": covariates["temperature"] + np.r_[np.zeros(end + 1), np.full(horizon, 5.0)]}
    moved = forecaster.forecast(values, stamps[: end + 1], horizon, covariates=warmer, calendar=US)
    assert np.abs(moved.mean - got.mean).max() > 1e-6
    # A missing temperature in the window is masked: the forecast stays defined, and moves.
    gap = {"temperature": covariates["temperature"].copy()}
    gap["temperature"][end - 2] = np.nan
    masked = forecaster.forecast(values, stamps[: end + 1], horizon, covariates=gap, calendar=US)
    assert np.isfinite(masked.mean).all() and np.abs(masked.mean - got.mean).max() > 0
    # Past the head the rollout reads the later heads' temperature; the first head is unchanged.
    long = {"temperature": series.covariates["temperature"][: end + 1 + 2 * horizon]}
    rolled = forecaster.forecast(values, stamps[: end + 1], 2 * horizon, covariates=long, calendar=US)
    np.testing.assert_allclose(rolled.mean[:horizon], got.mean, atol=1e-9 * scale)


def test_a_missing_covariate_reading_is_masked_not_invented() -> None:
    from app.ml.features import FeatureConfig, covariate_columns

    config = FeatureConfig(
        window=8, horizon=2, stream=False, time_of_day=False, day_of_week=False,
        network_covariates=("temperature",), covariate_centers=(10.0,), covariate_spreads=(2.0,),
    )
    columns = covariate_columns({"temperature": np.array([12.0, np.nan, 8.0])}, config)
    np.testing.assert_array_equal(columns, [[1.0, 1.0], [0.0, 0.0], [-1.0, 1.0]])
    assert config.n_future == 4


def test_network_covariates_default_to_a_window_model_and_a_stream_may_be_asked() -> None:
    assert not ModelSpec(covariate_inputs="both").is_stream
    assert ModelSpec(stateful=True, covariate_inputs="network").is_stream
    assert ModelSpec().is_stream


def test_a_stream_network_steps_each_reading_with_its_covariates_as_keras_runs_them(
    network_covariate_models: dict,
) -> None:
    """A stream model reads each reading's temperature beside it and the horizon's through the
    branch: stepped a reading at a time in numpy, it forecasts what the Keras twin computes over
    the whole run, and what one warm-up over the history gives."""
    from app.ml.features import every_future, step_inputs
    from app.ml.forecaster import Forecaster

    trained, directory, series = network_covariate_models["stream"]
    features = trained.features
    assert trained.spec.stateful and features.stream
    assert features.network_covariates == ("temperature",)
    forecaster = Forecaster.load(directory)
    scale, horizon = trained.scales[series.name], trained.spec.horizon
    end = 120
    temperature = series.covariates["temperature"][: end + 1 + horizon].copy()
    temperature[end - 5] = np.nan  # a missing reading: masked (0, flag off) in Keras and numpy
    stamps = series.timestamps[: end + 1 + horizon]
    values = series.values[: end + 1]
    steps = step_inputs(stamps, features, {"temperature": temperature})
    change = np.diff(values / scale, prepend=values[0] / scale)
    x = np.concatenate([change[:, None], steps[: end + 1]], axis=1)[None].astype("float32")
    future = every_future(steps, features)[: end + 1][None].astype("float32")
    out = np.asarray(trained.network([x, future], training=False))[0, -1]
    want = values[-1] + scale * out.astype(np.float64)

    track = forecaster.covariate_track(stamps.asi8, {"temperature": temperature})
    state = forecaster.initial(series.name)
    for i in range(end + 1):
        state = forecaster.warm(values[i : i + 1], stamps[i : i + 1], state, network_covariates=track)
    stepped = forecaster.forecast_from_state(state, horizon, network_covariates=track)
    whole = forecaster.forecast(values, stamps[: end + 1], horizon, covariates={"temperature": temperature})

    np.testing.assert_allclose(stepped.mean, want, atol=ATOL * scale)
    np.testing.assert_allclose(whole.mean, stepped.mean, atol=1e-9 * scale)
    # The horizon's temperature moves the forecast; the missing reading was not invented.
    warmer = temperature + np.r_[np.zeros(end + 1), np.full(horizon, 5.0)]
    moved = forecaster.forecast(values, stamps[: end + 1], horizon, covariates={"temperature": warmer})
    assert np.abs(moved.mean - stepped.mean).max() > 1e-6
    filled = temperature.copy()
    filled[end - 5] = np.nanmean(temperature)
    other = forecaster.forecast(values, stamps[: end + 1], horizon, covariates={"temperature": filled})
    assert np.abs(other.mean - stepped.mean).max() > 0
    # Past the head the rollout feeds its forecasts back with their steps' temperatures.
    long = np.r_[temperature, series.covariates["temperature"][end + 1 + horizon : end + 1 + 2 * horizon]]
    rolled = forecaster.forecast(values, stamps[: end + 1], 2 * horizon, covariates={"temperature": long})
    np.testing.assert_allclose(rolled.mean[:horizon], stepped.mean, atol=1e-9 * scale)
    assert np.isfinite(rolled.mean).all()
