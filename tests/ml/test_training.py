"""Training end to end on tiny models: artifacts, progress, cancel, determinism and no leaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.ml import windows
from app.ml.artifacts import KERAS_FILE, META_FILE, NETWORK_DIR, load_meta, save_artifacts
from app.ml.data import SeriesData, TrainingDataError
from app.ml.forecaster import Forecaster
from app.ml.spec import ModelSpec
from app.ml.training import EpochProgress, TrainedModel, TrainingCancelled, train
from tests.ml.conftest import CASES, TINY, make_series

META_KEYS = {
    "format_version",
    "created_at",
    "spec",
    "features",
    "scales",
    "mase_scales",
    "conformal",
    "data_range",
    "profiles",
    "metrics",
    "history",
    "best_epoch",
    "versions",
    "files",
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_kind_trains_saves_and_loads_to_identical_predictions(
    name: str, trained_models: dict, series: SeriesData
) -> None:
    import keras

    trained, directory = trained_models[name]
    assert {p.name for p in Path(directory).iterdir()} == {KERAS_FILE, META_FILE, NETWORK_DIR}
    meta = load_meta(directory)
    assert set(meta) == META_KEYS
    assert meta["spec"]["cell"] == CASES[name].cell
    assert meta["versions"]["keras"] == keras.__version__
    assert json.loads(json.dumps(meta)) == meta
    reloaded = keras.saving.load_model(Path(directory) / KERAS_FILE)
    x = np.random.default_rng(0).normal(size=(3, 8, trained.features.n_inputs)).astype("float32")
    np.testing.assert_array_equal(reloaded(x), trained.network(x))
    a = Forecaster.load(directory).forecast(series.values, series.timestamps, 4)
    b = Forecaster.load(directory).forecast(series.values, series.timestamps, 4)
    np.testing.assert_array_equal(a.mean, b.mean)


def test_metrics_are_complete(trained_models: dict) -> None:
    metrics = trained_models["lstm_window"][0].metrics
    for scope in ("one_step", "full_horizon"):
        for who in ("model", "seasonal_naive"):
            assert set(metrics[scope][who]) == {"mae", "rmse", "smape", "mase"}
    assert set(metrics["interval_coverage"]) == {"80", "95"}
    # one origin per day in the 48-reading test part of the 480-reading series
    assert metrics["test_origins"] == 2 and metrics["horizon"] == 3
    assert {k: len(v) for k, v in metrics["interval_coverage_by_step"].items()} == {"80": 3, "95": 3}
    # Early stopping selects on the validation part's first half, the intervals calibrate on the
    # second: 24 readings each, so 22 origins each whose 3 targets all lie in one half.
    assert metrics["validation_origins"] == 22 and metrics["calibration_origins"] == 22


def test_validation_metrics_and_mase_scales_are_stored(trained_models: dict, series: SeriesData) -> None:
    for name in ("lstm_window", "gru_mstl", "lstm_stateful"):
        trained, directory = trained_models[name]
        validation = trained.metrics["validation"]
        assert validation["origins"] == trained.metrics["validation_origins"] > 0
        for who in ("model", "seasonal_naive"):
            assert set(validation["full_horizon"][who]) == {"mae", "rmse", "smape", "mase"}
        meta = load_meta(directory)
        assert meta["metrics"]["validation"] == json.loads(json.dumps(validation))
        train_part = series.values[: round(len(series.values) * 0.8)]
        assert meta["mase_scales"] == {
            series.name: pytest.approx(np.mean(np.abs(train_part[24:] - train_part[:-24])))
        }


def test_auto_searches_candidates_within_its_budget(series: SeriesData) -> None:
    import time

    began = time.monotonic()
    trained = train(ModelSpec(auto=True, budget_s=4, units=4, epochs=1, window=8, batch_size=32), [series])
    records = trained.metrics["auto"]
    assert len(records) >= 1 and sum(r["chosen"] for r in records) == 1
    # the budget stops the search early: not every candidate is tried on 2 busy cores
    assert time.monotonic() - began < 60
    best = min(records, key=lambda r: r["validation_mase"])
    assert (
        best["chosen"]
        and trained.metrics["validation"]["full_horizon"]["model"]["mase"] == best["validation_mase"]
    )
    assert all(set(r) >= {"spec", "validation_mase", "seconds"} for r in records)


def test_progress_is_reported_every_epoch(series: SeriesData) -> None:
    seen: list[EpochProgress] = []
    train(ModelSpec(**{**TINY, "epochs": 3, "patience": 10}), [series], on_epoch=seen.append)
    assert [p.epoch for p in seen] == [1, 2, 3]
    assert all(p.epochs == 3 and p.elapsed_s > 0 and np.isfinite(p.val_loss) for p in seen)
    assert seen[-1].eta_s == 0.0


@pytest.mark.parametrize("stateful", [False, True])
def test_cancel_stops_training(series: SeriesData, stateful: bool, monkeypatch) -> None:
    monkeypatch.setattr("app.ml.training.CANCEL_POLL_INTERVAL_S", 0.0)
    calls: list[int] = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) >= 2

    spec = ModelSpec(**{**TINY, "epochs": 50, "batch_size": 4}, stateful=stateful)
    with pytest.raises(TrainingCancelled):
        train(spec, [series], should_stop=should_stop)
    assert len(calls) == 2


def _tamper_test_part(series: SeriesData, factor: float) -> SeriesData:
    values = series.values.copy()
    values[432:] *= factor  # the last 48 readings: the test part
    return SeriesData(values, series.timestamps, series.freq, series.name)


def _same_weights(a: TrainedModel, b: TrainedModel) -> bool:
    pairs = zip(a.network.get_weights(), b.network.get_weights(), strict=True)
    return all(np.array_equal(wa, wb) for wa, wb in pairs)


@pytest.mark.parametrize("name", ["lstm_window", "lstm_stateful", "gru_mstl"])
def test_the_test_part_never_reaches_fitting(
    name: str, trained_models: dict, series: SeriesData, monkeypatch
) -> None:
    spec = CASES[name]
    clean = trained_models[name][0]
    tampered = train(spec, [_tamper_test_part(series, 3.0)])
    assert clean.data_range[series.name]["test_start"] == series.timestamps[432].isoformat()
    # Same seed, same model (determinism), and fitting, scaling and calibration are blind to the
    # test part ...
    assert _same_weights(clean, tampered)
    assert clean.scales == tampered.scales and clean.conformal == tampered.conformal
    # ... while the evaluation does read it.
    assert clean.metrics["one_step"]["model"] != tampered.metrics["one_step"]["model"]

    # A planted leak (validation and test parts fitted as training data) is caught by this check.
    real_bounds = windows.part_bounds
    monkeypatch.setattr(
        windows,
        "part_bounds",
        lambda split, part: (0, split.n) if part == "train" else real_bounds(split, part),
    )
    leaky_clean = train(spec, [series])
    leaky_tampered = train(spec, [_tamper_test_part(series, 3.0)])
    assert not _same_weights(leaky_clean, leaky_tampered)


def test_several_series_train_one_global_model() -> None:
    a = make_series(480, name="a", level=100.0)
    b = make_series(600, name="b", level=5000.0, seed=1)
    trained = train(ModelSpec(**TINY), [a, b])
    assert set(trained.scales) == {"a", "b"} and trained.scales["b"] != trained.scales["a"]
    with pytest.raises(TrainingDataError, match="different frequencies"):
        train(ModelSpec(**TINY), [a, make_series(480, freq="30min", name="c")])


def test_series_with_long_gap_trains_on_its_segments() -> None:
    series = make_series(600)
    values = series.values.copy()
    values[200:260] = np.nan
    values[300:302] = np.nan
    gappy = SeriesData(values, series.timestamps, series.freq, series.name)
    for stateful in (False, True):
        trained = train(ModelSpec(**TINY, stateful=stateful), [gappy])
        assert trained.metrics["test_origins"] >= 1


def test_too_short_series_is_a_user_error() -> None:
    with pytest.raises(TrainingDataError, match="readings; this model needs at least"):
        train(ModelSpec(**TINY), [make_series(60)])


def test_save_is_atomic(trained_models: dict, tmp_path: Path, monkeypatch) -> None:
    trained = trained_models["lstm_window"][0]

    def crash(_: object) -> dict:
        raise RuntimeError("disk full")

    monkeypatch.setattr("app.ml.artifacts.build_meta", crash)
    with pytest.raises(RuntimeError):
        save_artifacts(trained, tmp_path / "m1")
    assert list(tmp_path.iterdir()) == []  # no half model, no leftovers
    monkeypatch.undo()
    save_artifacts(trained, tmp_path / "m1")
    with pytest.raises(FileExistsError):
        save_artifacts(trained, tmp_path / "m1")
