"""Tiny series and tiny trained models shared by the ML tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.ml.data import SeriesData
from app.ml.spec import ModelSpec


def make_series(
    n: int = 480,
    *,
    freq: str = "h",
    name: str = "load",
    seed: int = 0,
    level: float = 100.0,
    drift: float = 0.02,
) -> SeriesData:
    """A daily cycle with a weekly ripple, noise and a slow level drift."""
    t = np.arange(n)
    steps_per_day = pd.Timedelta("1D") / pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    rng = np.random.default_rng(seed)
    values = (
        level
        + 10 * np.sin(2 * np.pi * t / steps_per_day)
        + 3 * np.sin(2 * np.pi * t / (7 * steps_per_day))
        + drift * t
        + rng.normal(0, 0.5, n)
    )
    timestamps = pd.date_range("2024-01-01", periods=n, freq=freq)
    return SeriesData(values=values, timestamps=timestamps, freq=freq, name=name)


TINY = {"units": 6, "epochs": 2, "window": 8, "batch_size": 16, "seed": 3, "deseasonalize": "none"}

# name -> spec of every model kind the forecaster must reproduce.
CASES = {
    "lstm_window": ModelSpec(cell="lstm", stateful=False, horizon=3, **TINY),
    "gru_window": ModelSpec(cell="gru", stateful=False, layers=2, dropout=0.1, **TINY),
    "simple_rnn_window": ModelSpec(cell="simple_rnn", stateful=False, calendar=False, **TINY),
    # 4 lanes of 12 steps: 480 readings leave no tail, so a planted leak would be fitted.
    "lstm_stateful": ModelSpec(cell="lstm", stateful=True, horizon=2, chunk=12, **{**TINY, "batch_size": 4}),
    "gru_stateful": ModelSpec(cell="gru", stateful=True, layers=2, chunk=12, **TINY),
    "simple_rnn_stateful": ModelSpec(cell="simple_rnn", stateful=True, chunk=12, **TINY),
    "gru_bidirectional": ModelSpec(cell="gru", bidirectional=True, horizon=2, **TINY),
    # The default recipe's inputs: the series minus its MSTL seasonal component.
    "gru_mstl": ModelSpec(cell="gru", stateful=False, horizon=4, **{**TINY, "deseasonalize": "mstl"}),
    # A stream model over the same: each reading against the fit made before its day.
    "gru_stream_mstl": ModelSpec(
        cell="gru", stateful=True, horizon=4, chunk=12, **{**TINY, "deseasonalize": "mstl"}
    ),
}


@pytest.fixture(scope="session")
def series() -> SeriesData:
    return make_series()


@pytest.fixture(scope="session")
def trained_models(series: SeriesData, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """name -> (TrainedModel, saved directory), trained once for the whole session."""
    from app.ml.artifacts import save_artifacts
    from app.ml.training import train

    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, spec in CASES.items():
        trained = train(spec, [series])
        out[name] = (trained, save_artifacts(trained, Path(root) / name))
    return out
