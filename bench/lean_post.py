"""A one-reading stream post in process: the lean handler against FastAPI's own route, and a
profile of where the lean post's time goes.

One app (`create_app`, SQLite file or `--postgres-url`), one stream on a stateful GRU(16)
trained here (MSTL-deseasonalised, 28 days of half-hourly readings), the seasonal fits of every
day posted made ahead with the workers' code. Then `--requests` posts, alternating, one
reading each: a plain body (served by the lean handler, `app/api/lean_route.py`) and the same
body sent as `application/json; charset=utf-8`, which the lean handler leaves to FastAPI's
dependency, parameter and body solving (the route as it was before). The process's CPU time
per post is measured (client and server share it: the client's part is the same for both);
then the route's own work (what runs in the worker thread) of `--profile` more posts runs
under cProfile.

    python -m bench.lean_post [--requests 2000] [--postgres-url postgresql+psycopg://...]
"""

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.deps import Services
from app.api.plain_posts import PostQuery, decode_readings
from app.api.routes.streams import _post_one
from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.migrations import upgrade
from app.db.tables import ForecastModel, ModelSeries, ModelStatus, Series, utcnow
from app.db.tenants import create_key, hash_key
from app.ml.artifacts import load_meta, save_artifacts
from app.ml.data import SeriesData
from app.ml.forecaster import Forecaster
from app.ml.spec import ModelSpec
from app.ml.training import train
from app.model_files import model_path
from app.streams.seasonal_fits import make_fit, store_fit
from bench.harness import fresh_postgres_database

SPEC = ModelSpec(cell="gru", units=16, stateful=True, horizon=1, epochs=1, batch_size=8,
                 chunk=48, seed=0)
HISTORY_DAYS = 28
FREQ = "30min"
PLAIN = {"Content-Type": "application/json"}
FASTAPI = {"Content-Type": "application/json; charset=utf-8"}


def history() -> tuple[pd.DatetimeIndex, np.ndarray]:
    n = HISTORY_DAYS * 48
    t = np.arange(n)
    return (pd.date_range("2024-01-01", periods=n, freq=FREQ),
            1000 + 200 * np.sin(2 * np.pi * t / 48) + np.random.default_rng(0).normal(0, 10, n))


def setup(settings: Settings, client: TestClient, days: int) -> dict[str, str]:
    """A key, the series with its history, the trained model installed, stream `live`, and the
    seasonal fits of the `days` after the history (and the day after)."""
    with transaction(create_session_factory(create_db_engine(settings.database_url)),
                     write=True) as session:
        _, key = create_key(session=session, tenant_name="bench")
    auth = {"Authorization": f"Bearer {key}"}
    series_id = client.post("/v1/series", json={"name": "bench", "freq": FREQ},
                            headers=auth).json()["id"]
    stamps, values = history()
    client.post(f"/v1/series/{series_id}/readings", headers=auth, json={"readings": [
        {"ts": t.isoformat(), "value": float(v)} for t, v in zip(stamps, values, strict=True)]})
    artifact = save_artifacts(train(SPEC, [SeriesData(values=values, timestamps=stamps,
                                                      freq=FREQ, name="bench")]),
                              Path(settings.model_dir) / "trained")
    meta = load_meta(artifact)
    with transaction(create_session_factory(create_db_engine(settings.database_url)),
                     write=True) as session:
        tenant_id = session.scalars(select(Series.tenant_id)).one()
        model = ForecastModel(tenant_id=tenant_id, status=ModelStatus.READY, spec=meta["spec"],
                              resolved_spec=meta["spec"], metrics=meta["metrics"],
                              worse_than_naive=False, ready_at=utcnow())
        session.add(model)
        session.flush()
        session.add(ModelSeries(model_id=model.id, series_id=series_id, position=0))
        model_id = model.id
    artifact.rename(model_path(settings.model_dir, model_id))
    created = client.post("/v1/streams", json={"series_id": series_id, "stream_id": "live"},
                          headers=auth)
    assert created.status_code == 201, created.text
    # Every day's fit made ahead, by the workers' own code, as the workers would have.
    forecaster = Forecaster.load(model_path(settings.model_dir, model_id))
    first_day_s = int(stamps[-1].normalize().timestamp()) + 86_400
    with transaction(create_session_factory(create_db_engine(settings.database_url)),
                     write=True) as session:
        series = session.scalars(select(Series)).one()
        for day in range(days + 2):
            boundary_s = first_day_s + day * 86_400
            fit, _ = make_fit(session, series, forecaster.seasonal_fitter,
                              forecaster.features.fit_steps, boundary_s)
            store_fit(session, series.id, model_id, boundary_s, fit)
    return auth


def run(database_url: str, requests: int, profile: int, workdir: Path) -> None:
    settings = Settings(database_url=database_url, model_dir=workdir / "models",
                        key_file=workdir / "api_key", auto_migrate=False,
                        tenant_requests_per_s=0)
    upgrade(database_url)
    from app.main import create_app

    with TestClient(create_app(settings)) as client:
        posts = 2 * requests + profile + 1
        auth = setup(settings, client, days=posts // 48 + 1)
        start = int(history()[0][-1].timestamp()) + 1800
        # Every post reads its day's fit, made ahead (none reads a stale one).
        stamps = [pd.Timestamp(start + i * 1800, unit="s").isoformat()
                  for i in range(posts)]
        body = [f'{{"readings": [{{"ts": "{t}", "value": 1000.5}}]}}'.encode() for t in stamps]

        def post(i: int, headers: dict[str, str]) -> float:
            began = time.process_time()
            response = client.post("/v1/streams/live/readings", content=body[i],
                                   headers={**auth, **headers})
            assert response.status_code == 200, response.text
            return time.process_time() - began

        post(0, PLAIN)
        lean, full = [], []
        for k in range(requests):  # alternated, so both see the same moments of the machine
            lean.append(post(1 + 2 * k, PLAIN))
            full.append(post(2 + 2 * k, FASTAPI))
        print(f"[{database_url.split(':')[0]}] CPU ms per post, median of {requests}: "
              f"lean {1000 * statistics.median(lean):.3f}, FastAPI's route "
              f"{1000 * statistics.median(full):.3f} (lean / FastAPI = "
              f"{statistics.median(lean) / statistics.median(full):.2f}); load average "
              f"{os.getloadavg()[0]:.1f}")
        # The route's own work, called in this thread so cProfile sees it (a request runs it
        # in a worker thread): the transaction, the network step, the answer.
        state = client.app.state  # type: ignore[attr-defined]
        services = Services(settings=state.settings, forecasters=state.forecasters,
                            fits=state.seasonal_fits)
        tenant_id = state.keys.cached(hash_key(auth["Authorization"].split()[1])).tenant.id
        profiler = cProfile.Profile()
        began = time.perf_counter()
        for i in range(1 + 2 * requests, 1 + 2 * requests + profile):
            readings = decode_readings(body[i])
            assert readings is not None
            profiler.enable()
            with state.session_factory() as session:
                _post_one(session=session, services=services, tenant_id=tenant_id, name="live",
                          readings=readings, query=PostQuery(), minimal=False)
            profiler.disable()
        print(f"the route's own work, {profile} posts: "
              f"{1000 * (time.perf_counter() - began) / profile:.3f} ms each (wall, profiled)")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=300)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres_url:
            with fresh_postgres_database(args.postgres_url) as url:
                run(url, args.requests, args.profile, Path(tmp))
        else:
            run(f"sqlite:///{tmp}/bench.db", args.requests, args.profile, Path(tmp))


if __name__ == "__main__":
    main()
