"""Tiny trained models (once per session) installed into each test's own database."""

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.tables import ForecastModel, ModelSeries, ModelStatus, Series, Stream, utcnow
from app.ml.artifacts import load_meta, save_artifacts
from app.ml.data import SeriesData
from app.ml.spec import ModelSpec
from app.model_files import model_path

SERIES_NAME = "load"
N_READINGS = 24 * 21
TINY = {"units": 6, "epochs": 2, "batch_size": 16, "seed": 3, "window": 12}
SPECS = {
    "lstm_stateful": ModelSpec(cell="lstm", stateful=True, horizon=3, chunk=24,
                               **{**TINY, "batch_size": 4}),
    "gru_window": ModelSpec(cell="gru", stateful=False, horizon=2, **TINY),
}


def hourly_values(n: int = N_READINGS, seed: int = 0) -> tuple[pd.DatetimeIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 100 + 10 * np.sin(2 * np.pi * t / 24) + 0.02 * t + rng.normal(0, 0.5, n)
    return pd.date_range("2024-01-01", periods=n, freq="h"), values


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from app.ml.training import train

    stamps, values = hourly_values()
    data = SeriesData(values=values, timestamps=stamps, freq="h", name=SERIES_NAME)
    root = tmp_path_factory.mktemp("artifacts")
    return {name: save_artifacts(train(spec, [data]), root / name)
            for name, spec in SPECS.items()}


def install_model(settings: Settings, artifact: Path, series_id: int,
                  **columns: Any) -> int:
    """A ready model of `series_id` made of trained files, as a finished job leaves it."""
    meta = load_meta(artifact)
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        tenant_id = session.scalars(select(Series.tenant_id).where(Series.id == series_id)).one()
        model = ForecastModel(tenant_id=tenant_id, status=ModelStatus.READY, spec=meta["spec"],
                              resolved_spec=meta["spec"], metrics=meta["metrics"],
                              worse_than_naive=False, ready_at=utcnow(), **columns)
        session.add(model)
        session.flush()
        session.add(ModelSeries(model_id=model.id, series_id=series_id, position=0))
        model_id = model.id
    engine.dispose()
    shutil.copytree(artifact, model_path(settings.model_dir, model_id))
    return model_id


def upload(client: Any, auth: dict[str, str], series_id: int, stamps: pd.DatetimeIndex,
           values: np.ndarray) -> None:
    body = {"readings": [{"ts": t.isoformat(), "value": float(v)}
                         for t, v in zip(stamps, values, strict=True)]}
    response = client.post(f"/v1/series/{series_id}/readings", json=body, headers=auth)
    assert response.status_code == 200, response.text


def load_series(client: Any, auth: dict[str, str], readings: int) -> int:
    """The series the models were trained on, with its first `readings` stored."""
    response = client.post("/v1/series", json={"name": SERIES_NAME, "freq": "h"}, headers=auth)
    assert response.status_code == 201, response.text
    series_id: int = response.json()["id"]
    stamps, values = hourly_values()
    if readings:
        upload(client, auth, series_id, stamps[:readings], values[:readings])
    return series_id


def streams_on_the_series(client: Any, auth: dict[str, str], settings: Settings, artifact: Path,
                          names: tuple[str, ...], warm: int) -> int:
    """The series with its first `warm` readings, `artifact` installed as its model, and a
    stream of each of `names` on it; returns the series id."""
    series_id = load_series(client, auth, warm)
    install_model(settings, artifact, series_id)
    for name in names:
        created = client.post("/v1/streams", json={"series_id": series_id, "stream_id": name},
                              headers=auth)
        assert created.status_code == 201, created.text
    return series_id


def fleet_csv(warm: int) -> str:
    """Readings warm and warm + 1 for streams m1 and m2, and for a stream that does not exist."""
    stamps, values = hourly_values()
    rows = [f"{name},{stamps[i]:%Y-%m-%dT%H:%M:%SZ},{float(values[i])!r}"
            for i in (warm, warm + 1) for name in ("m1", "ghost", "m2")]
    return "stream_id,ts,value\n" + "\n".join(rows) + "\n"


def fits_made_ahead(settings: Settings) -> None:
    """What the workers' seasonal-fits jobs do, done here at once for every model with streams.

    A post reads a day's fit made ahead by the workers, and the newest one (stale) until it is
    made. A test that posts across days and checks the answers against the model's rule, with no
    worker running, calls this before each post, as a fleet's workers keep ahead of its days.
    """
    from app.ml.forecaster import Forecaster
    from app.worker.fits_task import make_due_fits

    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    with transaction(factory) as session:
        model_ids = set(session.scalars(select(Stream.model_id)))
    for model_id in model_ids - {None}:
        assert model_id is not None
        forecaster = Forecaster.load(model_path(settings.model_dir, model_id))
        if forecaster.needs_seasonal:
            make_due_fits(factory, forecaster, model_id, lambda _: True)
    engine.dispose()
