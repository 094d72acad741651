"""Stream serving speed on loopback, side by side in one run.

Measures requests per second and p50/p99 latency, one connection, of:
  (a) GET /healthz: the framework's ceiling;
  (b) one-reading posts to a stream, persisted, on SQLite and on PostgreSQL, with the full
      answer and with `Prefer: return=minimal` (204, no body);
  (c) a baseline app (bench/keras_baseline.py): `model.predict` on a stateful Keras model per
      reading, the first thing a user would write;
and the readings per second of 10,000-reading batch posts (median of five), and the p50 of
GET /v1/streams/{id}/forecast?horizon=96. Prints the ratios against the goals.

First, the covariate case (alone with `--covariates-only`): one-reading posts to a stream on a
model reading a temperature covariate and to one on the same spec reading none, in alternating
blocks on one server, the plain model's seasonal fits made ahead for every day posted; the
server's CPU time per post of each, and their ratio against the goal.

    python -m bench.stream [--requests 2000] [--batches 5] [--postgres-url postgresql+psycopg://...]
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.goals import (
    COVARIATE_POST_OVER_PLAIN_MAX,
    FORECAST_96_P50_MS_MAX,
    STREAM_BATCH_READINGS_PER_S,
    STREAM_POST_OVER_HEALTHZ_MIN,
    STREAM_POST_OVER_KERAS_MIN,
)
from bench.harness import (
    REPO_ROOT,
    free_port,
    fresh_postgres_database,
    running,
    serving,
    serving_process,
    statecast_argv,
    thread_cpu_ns,
)

# Every field of the spec, so that a changed default cannot change what is measured: a stateful
# LSTM(32), MSTL-deseasonalised (a stream of it reads a stored seasonal fit a day; with
# covariates, a regression profile over them and the series' calendar instead).
SPEC = {"cell": "lstm", "units": 32, "layers": 1, "dropout": 0.0, "stateful": True,
        "bidirectional": False, "window": 48, "horizon": 1, "calendar": False,
        "deseasonalize": "mstl", "covariate_inputs": "profile", "loss": "mae", "epochs": 2,
        "patience": 8, "batch_size": 8, "learning_rate": 1e-3, "seed": 0, "chunk": 48,
        "validation_fraction": 0.1, "test_fraction": 0.1, "auto": False}
HISTORY_DAYS = 28
BATCH_READINGS = 10_000
FREQ_S = 1800


class Client:
    """One keep-alive HTTP/1.1 connection: the cheapest client, so the server is measured."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, body: object = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        data = None if body is None else json.dumps(body)
        start = time.perf_counter()
        self.connection.request(method, path, body=data, headers={**self.headers, **(headers or {})})
        response = self.connection.getresponse()
        payload = response.read()
        return response.status, payload, time.perf_counter() - start


def measure(calls: list[tuple[str, str, object]], client: Client,
            headers: dict[str, str] | None = None) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for method, path, body in calls:
        status, payload, elapsed = client.request(method, path, body, headers)
        if status not in (200, 204):
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
        latencies.append(elapsed)
    wall = time.perf_counter() - start
    return {"rps": len(calls) / wall, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p99_ms": 1000 * float(np.percentile(latencies, 99))}


def history() -> tuple[list[str], np.ndarray]:
    n = HISTORY_DAYS * 48
    stamps = pd.date_range("2024-01-01", periods=n, freq="30min")
    t = np.arange(n)
    values = 1000 + 200 * np.sin(2 * np.pi * t / 48) + np.random.default_rng(0).normal(0, 10, n)
    return [s.isoformat() for s in stamps], values


def readings(start_s: int, n: int) -> list[dict[str, object]]:
    t = np.arange(n)
    values = 1000 + 200 * np.sin(2 * np.pi * t / 48)
    return [{"ts": pd.Timestamp(start_s + i * FREQ_S, unit="s").isoformat(), "value": float(v)}
            for i, v in zip(t.tolist(), values.tolist(), strict=True)]


def run_database(name: str, database_url: str, requests: int, batches: int,
                 workdir: Path) -> dict[str, object]:
    """Train a stateful model on this database, then measure the stream against /healthz."""
    with serving(database_url, workdir, STATECAST_WORKER_POLL_INTERVAL_S="0.2") as (
            url, key, env):
        port = int(url.rsplit(":", 1)[1])
        http_ = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                             timeout=120)
        sid = http_.post("/v1/series", json={"name": "bench", "freq": "30min"}).json()["id"]
        stamps, values = history()
        http_.post(f"/v1/series/{sid}/readings", json={"readings": [
            {"ts": t, "value": float(v)} for t, v in zip(stamps, values, strict=True)]})
        job = http_.post("/v1/models", json={"series_ids": [sid], "spec": SPEC}).json()["job"]
        with running([*statecast_argv(), "worker"], env, workdir / "worker.log"):
            while http_.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
                time.sleep(0.5)
        model = http_.get(f"/v1/models/{job['model_id']}").json()
        assert model["status"] == "ready", model
        http_.post("/v1/streams", json={"series_id": sid, "stream_id": "live"})
        last_s = int(pd.Timestamp(stamps[-1], tz="UTC").timestamp())
        client = Client(port, key)
        measure([("GET", "/healthz", None)] * 200, client)  # warm up both paths
        healthz = measure([("GET", "/healthz", None)] * requests, client)
        live = readings(last_s + FREQ_S, 2 * requests + batches * BATCH_READINGS)
        posts = measure([("POST", "/v1/streams/live/readings", {"readings": [r]})
                         for r in live[:requests]], client)
        minimal = measure([("POST", "/v1/streams/live/readings", {"readings": [r]})
                           for r in live[requests:2 * requests]], client,
                          {"Prefer": "return=minimal"})
        forecast = measure([("GET", "/v1/streams/live/forecast?horizon=96", None)] * 200, client)
        batch_s = []
        for k in range(batches):  # the median of several: the first pays one-time warm-ups
            first = 2 * requests + k * BATCH_READINGS
            start = time.perf_counter()
            status, payload, _ = client.request("POST", "/v1/streams/live/readings",
                                                {"readings": live[first:first + BATCH_READINGS]})
            batch_s.append(time.perf_counter() - start)
            assert status == 200, payload[:300]
        return {"database": name, "healthz": healthz, "post": posts, "post_minimal": minimal,
                "forecast96": forecast,
                "batch_readings_per_s": BATCH_READINGS / float(np.median(batch_s))
                if batch_s else float("nan"),
                "batch_readings_per_s_range": [BATCH_READINGS / max(batch_s),
                                               BATCH_READINGS / min(batch_s)] if batch_s else [],
                "model_file": str(workdir / "models" / str(job["model_id"]) / "model.keras")}


# The covariate case: the same spec reading a temperature series linked to its series (an
# hourly series under the half-hourly load, as a weather feed is), against the spec reading none.
COVARIATE = "temperature"
# Posts to one stream between two reads of the server's CPU time: the cases alternate by block.
CPU_BLOCK_POSTS = 10


def temperature(start_s: int, hours: int) -> list[dict[str, object]]:
    t = np.arange(hours)
    values = 10 + 6 * np.sin(2 * np.pi * (t - 6) / 24)
    return [{"ts": pd.Timestamp(start_s + i * 3600, unit="s").isoformat(), "value": float(v)}
            for i, v in zip(t.tolist(), values.tolist(), strict=True)]


def stale_fits_read(http_: httpx.Client) -> int:
    """Seasonal fits read stale so far (`statecast_seasonal_fits_stale`): a plain post whose
    day's fit the workers had not made yet reads the day before's, which costs it more."""
    for line in http_.get("/metrics").text.splitlines():
        if line.startswith("statecast_seasonal_fits_stale_total "):
            return int(float(line.split()[1]))
    return 0


def make_fits_ahead(database_url: str, model_dir: Path, model_id: int, series_id: int,
                    first_s: int, last_s: int) -> int:
    """Store the seasonal fit of every day from `first_s` to a day past `last_s` with the
    workers' own code (as they make each one before its day), so that every plain post reads
    its day's fit, as in production; how many were stored."""
    from sqlalchemy import select

    from app.db.engine import create_db_engine, create_session_factory, transaction
    from app.db.tables import Series
    from app.ml.forecaster import Forecaster
    from app.model_files import model_path
    from app.streams.seasonal_fits import make_fit, store_fit

    forecaster = Forecaster.load(model_path(model_dir, model_id))
    engine = create_db_engine(database_url)
    stored = 0
    try:
        with transaction(create_session_factory(engine), write=True) as session:
            series = session.scalars(select(Series).where(Series.id == series_id)).one()
            for boundary_s in range(first_s - first_s % 86_400, last_s + 2 * 86_400, 86_400):
                fit, _ = make_fit(session, series, forecaster.seasonal_fitter,
                                  forecaster.features.fit_steps, boundary_s)
                stored += store_fit(session, series_id, model_id, boundary_s, fit)
    finally:
        engine.dispose()
    return stored


def run_covariates(name: str, database_url: str, requests: int,
                   workdir: Path) -> dict[str, object]:
    """One-reading posts to a stream on a covariate model and to one on the same spec without
    covariates, on one server, in alternating blocks: the server's CPU time per post of each
    (the firmer measure on a loaded machine), and p50 and requests per second of each."""
    with serving_process(database_url, workdir, STATECAST_WORKER_POLL_INTERVAL_S="0.2") as (
            url, key, env, server):
        port = int(url.rsplit(":", 1)[1])
        http_ = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                             timeout=120)
        stamps, values = history()
        first_s = int(pd.Timestamp(stamps[0], tz="UTC").timestamp())
        last_s = int(pd.Timestamp(stamps[-1], tz="UTC").timestamp())
        warm_up = 2 * CPU_BLOCK_POSTS
        posts = warm_up + requests
        # The covariate covers the history, every post and two days past them (its forecast).
        hours = (last_s - first_s) // 3600 + posts // 2 + 2 * 24
        weather = http_.post("/v1/series", json={"name": COVARIATE, "freq": "h"}).json()["id"]
        assert http_.post(f"/v1/series/{weather}/readings",
                          json={"readings": temperature(first_s, hours)}).status_code == 200
        links = {"plain": [], "covariate": [{"series_id": weather, "name": COVARIATE,
                                             "known_future": True}]}
        specs = {"plain": {**SPEC, "covariates": []},
                 "covariate": {**SPEC, "covariates": [COVARIATE]}}
        jobs = {}
        for case, case_links in links.items():
            sid = http_.post("/v1/series", json={"name": case, "freq": "30min",
                                                 "covariates": case_links}).json()["id"]
            http_.post(f"/v1/series/{sid}/readings", json={"readings": [
                {"ts": t, "value": float(v)} for t, v in zip(stamps, values, strict=True)]})
            jobs[case] = (sid, http_.post("/v1/models", json={
                "series_ids": [sid], "spec": specs[case]}).json()["job"])
        # The worker trains the models, then stops: it would compete for the CPU, and the fits
        # it makes ahead for the plain model are made below instead, for every day posted.
        with running([*statecast_argv(), "worker"], env, workdir / "worker.log"):
            for _, job in jobs.values():
                while http_.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued",
                                                                             "running"):
                    time.sleep(0.5)
        for case, (sid, job) in jobs.items():
            model = http_.get(f"/v1/models/{job['model_id']}").json()
            assert model["status"] == "ready", model
            created = http_.post("/v1/streams", json={"series_id": sid, "stream_id": case})
            assert created.status_code == 201, created.text
        live = readings(last_s + FREQ_S, posts)
        plain_sid, plain_job = jobs["plain"]
        fits = make_fits_ahead(database_url, workdir / "models", plain_job["model_id"],
                               plain_sid, last_s + FREQ_S, last_s + posts * FREQ_S)
        client = Client(port, key)
        latencies: dict[str, list[float]] = {case: [] for case in jobs}
        cpu_ns = dict.fromkeys(jobs, 0)
        for case in jobs:  # warm up both paths
            measure([("POST", f"/v1/streams/{case}/readings", {"readings": [r]})
                     for r in live[:warm_up]], client)
        stale_before = stale_fits_read(http_)
        for block, first in enumerate(range(warm_up, posts, CPU_BLOCK_POSTS)):
            # A block of posts to each stream in turn, the first case alternating: both meet
            # the same load, and each block's readings cross the same days.
            for case in list(jobs)[::1 if block % 2 else -1]:
                began = thread_cpu_ns(server.pid)
                for r in live[first:first + CPU_BLOCK_POSTS]:
                    status, payload, elapsed = client.request(
                        "POST", f"/v1/streams/{case}/readings", {"readings": [r]})
                    assert status == 200, payload[:300]
                    latencies[case].append(elapsed)
                cpu_ns[case] += thread_cpu_ns(server.pid) - began
        stale = stale_fits_read(http_) - stale_before
        return {"database": name, "fits_made_ahead": fits,
                "plain_posts_reading_a_stale_fit": stale, "load_average": os.getloadavg()[0],
                **{case: {"cpu_ms_per_post": cpu_ns[case] / 1e6 / len(times),
                          "rps": len(times) / sum(times),
                          "p50_ms": 1000 * float(np.percentile(times, 50)),
                          "p99_ms": 1000 * float(np.percentile(times, 99))}
                   for case, times in latencies.items()}}


def run_baseline(model_file: str, requests: int, workdir: Path) -> dict[str, float]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "STATECAST_BASELINE_MODEL": model_file,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-m", "uvicorn", "bench.keras_baseline:app", "--port", str(port),
            "--log-level", "warning"]
    with running(argv, env, workdir / "baseline.log", f"http://127.0.0.1:{port}/docs"):
        client = Client(port)
        live = readings(0, requests)
        measure([("POST", "/readings", {"readings": [r]}) for r in live[:20]], client)
        return measure([("POST", "/readings", {"readings": [r]}) for r in live[:requests]],
                       client)


def covariates(requests: int, postgres_url: str | None) -> None:
    """The covariate case on each database, printed against its goal."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results.append(run_covariates("sqlite", f"sqlite:///{root / 'sqlite' / 'bench.db'}",
                                      requests, root / "sqlite"))
        if postgres_url:
            with fresh_postgres_database(postgres_url) as url:
                results.append(run_covariates("postgresql", url, requests, root / "postgresql"))
    print(json.dumps(results, indent=1), file=sys.stderr)
    print(f"{'stream post, 1 reading':38} {'server CPU ms':>13} {'req/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8}")
    for r in results:
        for case in ("plain", "covariate"):
            m = r[case]
            assert isinstance(m, dict)
            print(f"{case + ' model [' + str(r['database']) + ']':38} "
                  f"{m['cpu_ms_per_post']:13.3f} {m['rps']:9.0f} {m['p50_ms']:8.2f} "
                  f"{m['p99_ms']:8.2f}")
    for r in results:
        plain, covariate = r["plain"], r["covariate"]
        assert isinstance(plain, dict) and isinstance(covariate, dict)
        ratio = covariate["cpu_ms_per_post"] / plain["cpu_ms_per_post"]
        print(f"[{r['database']}] covariate/plain: server CPU per post {ratio:.2f} "
              f"(goal <= {COVARIATE_POST_OVER_PLAIN_MAX:.2f}: "
              f"{'met' if ratio <= COVARIATE_POST_OVER_PLAIN_MAX else 'missed'}); p50 "
              f"{covariate['p50_ms'] / plain['p50_ms']:.2f}, time per post "
              f"{plain['rps'] / covariate['rps']:.2f}; fits made ahead "
              f"{r['fits_made_ahead']}, stale fits read by the plain posts: "
              f"{r['plain_posts_reading_a_stale_fit']}; load average {r['load_average']:.1f}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline-requests", type=int, default=200)
    parser.add_argument("--batches", type=int, default=5,
                        help="10,000-reading posts to one stream (each makes ~208 daily fits)")
    parser.add_argument("--postgres-url", default=os.environ.get("STATECAST_TEST_DATABASE_URL"))
    parser.add_argument("--covariates-only", action="store_true",
                        help="measure only the covariate case (covariate against plain posts)")
    args = parser.parse_args()
    covariates(args.requests, args.postgres_url)
    if args.covariates_only:
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results.append(run_database("sqlite", f"sqlite:///{root / 'sqlite' / 'bench.db'}",
                                    args.requests, args.batches, root / "sqlite"))
        if args.postgres_url:
            with fresh_postgres_database(args.postgres_url) as url:
                results.append(run_database("postgresql", url, args.requests, args.batches,
                                            root / "postgresql"))
        print(json.dumps(results, indent=1), file=sys.stderr)
        baseline = run_baseline(str(results[0]["model_file"]), args.baseline_requests,
                                root / "baseline")
    print(f"{'case':38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'(c) keras model.predict per reading':38} {baseline['rps']:9.0f} "
          f"{baseline['p50_ms']:8.2f} {baseline['p99_ms']:8.2f}")
    for r in results:
        for label, key in (("(a) GET /healthz", "healthz"), ("(b) stream post, 1 reading", "post"),
                           ("(b) the same, return=minimal", "post_minimal"),
                           ("GET stream forecast horizon=96", "forecast96")):
            m = r[key]
            assert isinstance(m, dict)
            print(f"{label + ' [' + str(r['database']) + ']':38} {m['rps']:9.0f} "
                  f"{m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
    print()
    for r in results:
        post, healthz, forecast = r["post"], r["healthz"], r["forecast96"]
        assert isinstance(post, dict) and isinstance(healthz, dict) and isinstance(forecast, dict)
        database = str(r["database"])
        minimal = r["post_minimal"]
        assert isinstance(minimal, dict)
        print(f"[{database}] post/healthz = {post['rps'] / healthz['rps']:.2f} "
              f"(return=minimal: {minimal['rps'] / healthz['rps']:.2f}) "
              f"(goal >= {STREAM_POST_OVER_HEALTHZ_MIN[database]:.2f}); "
              f"post/keras = {post['rps'] / baseline['rps']:.1f}x "
              f"(goal >= {STREAM_POST_OVER_KERAS_MIN:.0f}x); "
              f"batch = {r['batch_readings_per_s']:,.0f} readings/s, median of {args.batches} "
              f"(goal >= {STREAM_BATCH_READINGS_PER_S:,}); "
              f"forecast96 p50 = {forecast['p50_ms']:.2f} ms (goal < {FORECAST_96_P50_MS_MAX:.0f})")


if __name__ == "__main__":
    main()
