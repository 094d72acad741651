"""Training through the API and a real worker: success, crash and retry, cancel."""

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.helpers import assert_problem, count_rows
from tests.worker.helpers import (
    fast_worker,
    job_status,
    series_with_data,
    train,
    trained,
    work_until,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", [
    {},
    {"cell": "gru", "stateful": True, "chunk": 24},
    {"cell": "simple_rnn", "bidirectional": True, "layers": 2},
], ids=["default", "gru-stateful", "simple_rnn-bidirectional"])
def test_train_through_api_to_a_ready_model(client: TestClient, auth: dict[str, str],
                                            settings: Settings, kind: dict[str, object]) -> None:
    sid = series_with_data(client, auth)
    accepted = train(client, auth, sid, **kind)
    job_id, model_id = accepted["job"]["id"], accepted["model"]["id"]
    assert accepted["job"]["status"] == "queued" and accepted["model"]["status"] == "training"
    # The default spec's job starts its child as production does; the others fork theirs.
    worker = fast_worker(settings, spawn=not kind)
    work_until(worker, lambda: job_status(client, auth, job_id)["status"] in
               ("succeeded", "failed"))
    job = job_status(client, auth, job_id)
    assert job["status"] == "succeeded", job
    assert job["progress"]["epoch"] >= 1 and job["progress"]["history"]
    model = client.get(f"/v1/models/{model_id}", headers=auth).json()
    assert model["status"] == "ready" and model["is_default"]
    full = model["metrics"]["full_horizon"]
    assert {"mae", "rmse", "smape", "mase"} <= set(full["model"]) == set(full["seasonal_naive"])
    assert (settings.model_dir / str(model_id) / "meta.json").exists()
    listed = client.get(f"/v1/models?series_id={sid}", headers=auth).json()
    assert [m["id"] for m in listed["data"]] == [model_id]
    assert client.post(f"/v1/models/{model_id}/promote", headers=auth).json()["promoted_at"]
    assert client.delete(f"/v1/models/{model_id}", headers=auth).status_code == 204
    assert not (settings.model_dir / str(model_id)).exists()
    # The model's jobs went with it (the worker may have queued the service's own since).
    assert count_rows(settings.database_url, "jobs WHERE tenant_id IS NOT NULL") == 0
    worker.shutdown()


def test_crashed_child_is_retried_and_yields_one_model(client: TestClient, auth: dict[str, str],
                                                       settings: Settings) -> None:
    sid = series_with_data(client, auth)
    accepted = train(client, auth, sid, epochs=3)
    job_id = accepted["job"]["id"]
    worker = fast_worker(settings)
    work_until(worker, lambda: bool(worker.running))
    os.kill(worker.running[job_id].process.pid or 0, signal.SIGKILL)
    work_until(worker, lambda: job_status(client, auth, job_id)["status"] in
               ("succeeded", "failed"), timeout_s=180)
    job = job_status(client, auth, job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert count_rows(settings.database_url, "forecast_models") == 1
    assert [p.name for p in settings.model_dir.iterdir()] == [str(accepted["model"]["id"])]
    worker.shutdown()


def test_cancel_queued_and_running(client: TestClient, auth: dict[str, str],
                                   settings: Settings) -> None:
    sid = series_with_data(client, auth)
    queued = train(client, auth, sid)["job"]["id"]
    cancelled = client.post(f"/v1/jobs/{queued}/cancel", headers=auth).json()
    assert cancelled["status"] == "cancelled"
    assert_problem(client.post(f"/v1/jobs/{queued}/cancel", headers=auth), 409)

    running = train(client, auth, sid, epochs=200, patience=200)
    worker = fast_worker(settings)
    work_until(worker, lambda: (job_status(client, auth, running["job"]["id"]).get("progress")
                                or {}).get("epoch", 0) >= 1, timeout_s=120)
    asked = time.monotonic()
    client.post(f"/v1/jobs/{running['job']['id']}/cancel", headers=auth)
    work_until(worker, lambda: job_status(client, auth, running["job"]["id"])["status"]
               == "cancelled", timeout_s=30)
    assert time.monotonic() - asked < 10
    model = client.get(f"/v1/models/{running['model']['id']}", headers=auth).json()
    assert model["status"] == "cancelled"
    worker.shutdown()


def test_bad_specs_are_422_and_enqueue_nothing(client: TestClient, auth: dict[str, str],
                                               other_auth: dict[str, str],
                                               settings: Settings) -> None:
    sid = series_with_data(client, auth, days=3)
    for spec, field in [({"cell": "transformer"}, "spec.cell"), ({"units": 0}, "spec.units"),
                        ({"layers": 5}, "spec.layers"), ({"window": 3}, "spec.window"),
                        ({"stateful": True, "bidirectional": True}, "spec"),
                        ({"colour": "red"}, "spec.colour"), ({"units": 100_000}, "spec.units"),
                        ({"epochs": 10**9}, "spec.epochs"), ({"window": 10**9}, "spec.window")]:
        response = client.post("/v1/models", json={"series_ids": [sid], "spec": spec},
                               headers=auth)
        assert_problem(response, 422, field)
    assert_problem(client.post("/v1/models", json={"series_ids": []}, headers=auth), 422,
                   "series_ids")
    assert_problem(client.post("/v1/models", json={"series_ids": [sid]}, headers=other_auth),
                   404)
    assert count_rows(settings.database_url, "jobs") == 0


def test_too_short_series_is_refused_with_the_length_it_needs(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    sid = series_with_data(client, auth, days=4)
    problem = assert_problem(client.post("/v1/models", json={"series_ids": [sid]},
                                         headers=auth), 422, "series_ids")
    # A day's window and horizon, 16 windows, and a day each for validation and test: 112 steps.
    assert problem["errors"][0]["needed"] == 112 and "112" in problem["detail"]
    assert "96 readings" in problem["detail"]
    small = {"window": 8, "horizon": 2, "validation_fraction": 0.2, "test_fraction": 0.2}
    assert client.post("/v1/models", json={"series_ids": [sid], "spec": small},
                       headers=auth).status_code == 202
    assert count_rows(settings.database_url, "jobs") == 1
    # A frequency whose days no seasonal period fits: refused before any job, naming it.
    odd = client.post("/v1/series", json={"name": "odd", "freq": "7min"}, headers=auth).json()["id"]
    problem = assert_problem(client.post("/v1/models", json={"series_ids": [odd]}, headers=auth),
                             422, "spec")
    assert "7min" in problem["detail"]
    assert count_rows(settings.database_url, "jobs") == 1


def test_untrainable_data_fails_the_job_with_a_sentence(client: TestClient, auth: dict[str, str],
                                                        settings: Settings) -> None:
    sid = client.post("/v1/series", json={"name": "flat", "freq": "h"}, headers=auth).json()["id"]
    csv = "ts,value\n" + "".join(f"{t:%Y-%m-%d %H:%M},5\n"
                                 for t in pd.date_range("2024-01-01", periods=480, freq="h"))
    assert client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                       headers={**auth, "Content-Type": "text/csv"}).status_code == 200
    job_id = train(client, auth, sid)["job"]["id"]
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, job_id)["status"] == "failed")
    error = job_status(client, auth, job_id)["error"]
    assert "Traceback" not in error and "constant" in error
    worker.shutdown()


def test_the_child_reports_a_starting_phase_before_tensorflow_loads(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    """The first progress a job shows is `starting`, written before the child imports Keras.

    The series is constant (POST /v1/models refuses a too-short one before any job), so the job
    fails right after the imports and its last progress is the one written before them.
    """
    from app.db import jobs
    from app.db.engine import create_db_engine, create_session_factory, transaction
    from app.worker.training_task import run_training_job

    sid = client.post("/v1/series", json={"name": "flat", "freq": "h"}, headers=auth).json()["id"]
    csv = "ts,value\n" + "".join(f"{t:%Y-%m-%d %H:%M},5\n"
                                 for t in pd.date_range("2024-01-01", periods=480, freq="h"))
    assert client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                       headers={**auth, "Content-Type": "text/csv"}).status_code == 200
    job_id = train(client, auth, sid)["job"]["id"]
    assert job_status(client, auth, job_id)["progress"] is None  # queued: nothing yet
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        claimed = jobs.claim(session=session, worker_id="test", lease_s=60)
    engine.dispose()
    assert claimed is not None and claimed.id == job_id
    run_training_job(settings.model_dump(), claimed)
    job = job_status(client, auth, job_id)
    assert job["status"] == "failed", job
    assert job["progress"]["phase"] == "starting" and job["progress"]["epoch"] == 0


def test_weekly_pattern_gets_the_weekly_baseline_and_a_losing_model_is_flagged(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    rng = np.random.default_rng(1)
    stamps = pd.date_range("2024-01-01", periods=6 * 168, freq="h")
    values = 500 + np.tile(rng.normal(0, 50, 168), 6) + rng.normal(0, 0.5, len(stamps))
    csv = "ts,value\n" + "".join(f"{t:%Y-%m-%d %H:%M},{v:.3f}\n"
                                 for t, v in zip(stamps, values, strict=True))
    sid = client.post("/v1/series", json={"name": "weekly", "freq": "h"}, headers=auth).json()["id"]
    assert client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                       headers={**auth, "Content-Type": "text/csv"}).status_code == 200
    accepted = train(client, auth, sid, deseasonalize="none", epochs=1)
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, accepted["job"]["id"])["status"] in
               ("succeeded", "failed"))
    worker.shutdown()
    model = client.get(f"/v1/models/{accepted['model']['id']}", headers=auth).json()
    assert model["status"] == "ready", model
    assert model["metrics"]["baseline"] == {"name": "seasonal_naive", "lag": 168}
    assert model["resolved_spec"]["seasonal_period"] == 168
    # The weekly naive repeats last week within the noise: its MASE is about 1, not ~40.
    assert model["metrics"]["full_horizon"]["seasonal_naive"]["mase"] < 1.5
    assert model["worse_than_naive"] is True


def test_weekly_series_with_gaps_trains_and_forecasts(client: TestClient, auth: dict[str, str],
                                                      settings: Settings) -> None:
    rng = np.random.default_rng(2)
    stamps = pd.date_range("2015-01-03", periods=6 * 52 + 13, freq="W-SAT")
    week = np.arange(len(stamps))

    def truth(i: np.ndarray) -> np.ndarray:  # a trend and a yearly cycle of about 52.18 weeks
        return 1000 + 2.0 * i + 200 * np.sin(2 * np.pi * i / (365.25 / 7))

    values = truth(week) + rng.normal(0, 10, len(week))
    known = len(stamps) - 13
    kept = np.setdiff1d(np.arange(known), [40, 41, 42, 150, 230])  # missing weeks
    csv = "ts,value\n" + "".join(f"{stamps[i]:%Y-%m-%d},{values[i]:.3f}\n" for i in kept)
    sid = client.post("/v1/series", json={"name": "weekly", "freq": "W-SAT"},
                      headers=auth).json()["id"]
    assert client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                       headers={**auth, "Content-Type": "text/csv"}).status_code == 200
    # Stream models step by a fixed duration: asked for on weeks they are refused, naming the
    # fix; by default a weekly series gets a window model.
    refused = client.post("/v1/models", json={"series_ids": [sid], "spec": {"stateful": True}},
                          headers=auth)
    assert "stateful" in assert_problem(refused, 422, "spec.stateful")["detail"]
    model = trained(client, auth, settings, sid, window=26, horizon=13, epochs=3)
    assert model["resolved_spec"]["stateful"] is False
    assert model["metrics"]["baseline"] == {"name": "seasonal_naive", "lag": 52}
    forecast = client.get(f"/v1/series/{sid}/forecast?horizon=13", headers=auth)
    assert forecast.status_code == 200, forecast.text
    points = forecast.json()["points"]
    assert [p["ts"][:10] for p in points] == [f"{t:%Y-%m-%d}" for t in stamps[known:]]
    error = np.abs(np.array([p["mean"] for p in points]) - truth(week[known:]))
    # The yearly cycle alone swings 400; a forecast that follows trend and season is far closer.
    assert float(np.mean(error)) < 60, error


def test_local_daily_profile_stays_aligned_across_a_dst_change(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    # Readings peak at 08:00 London time: 08:00 UTC in March, 07:00 UTC from 31 March on.
    stamps = pd.date_range("2024-02-18 00:00", "2024-03-30 23:00", freq="h")
    local_hour = stamps.tz_localize("UTC").tz_convert("Europe/London").hour
    values = 500 + 100 * (local_hour == 8) + np.random.default_rng(3).normal(0, 1, len(stamps))
    csv = "ts,value\n" + "".join(f"{t:%Y-%m-%dT%H:%M}Z,{v:.3f}\n"
                                 for t, v in zip(stamps, values, strict=True))
    sid = client.post("/v1/series", json={"name": "london", "freq": "h",
                                          "timezone": "Europe/London"}, headers=auth).json()["id"]
    assert client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                       headers={**auth, "Content-Type": "text/csv"}).status_code == 200
    # The window model's seasonal fit follows local time; the stream model's does not yet.
    accepted = train(client, auth, sid, stateful=False)
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, accepted["job"]["id"])["status"] in
               ("succeeded", "failed"))
    worker.shutdown()
    assert job_status(client, auth, accepted["job"]["id"])["status"] == "succeeded"
    points = client.get(f"/v1/series/{sid}/forecast?horizon=48", headers=auth).json()["points"]
    second_day = points[24:]  # 1 April (UTC), wholly in British Summer Time
    peak = max(second_day, key=lambda p: p["mean"])
    assert peak["ts"] == "2024-04-01T07:00:00Z"


def test_series_with_closed_hours_trains_on_the_readings_that_exist(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    # Twelve weeks read on weekdays 07:00-21:00 only; every hour of the week has its own level and
    # the series drifts 0.01 an hour, so last week's reading is off by exactly 1.68 wherever a
    # reading exists, and by something else wherever one would be invented.
    stamps = pd.date_range("2024-01-01", periods=12 * 168, freq="h")
    profile = np.random.default_rng(4).normal(100, 20, 168)
    values = profile[np.arange(len(stamps)) % 168] + 0.01 * np.arange(len(stamps))
    open_ = (stamps.dayofweek < 5) & (stamps.hour >= 7) & (stamps.hour <= 21)
    csv = "ts,value\n" + "".join(f"{t:%Y-%m-%d %H:%M},{v:.4f}\n"
                                 for t, v in zip(stamps[open_], values[open_], strict=True))
    sid = client.post("/v1/series", json={"name": "shop", "freq": "h"}, headers=auth).json()["id"]
    assert client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                       headers={**auth, "Content-Type": "text/csv"}).status_code == 200
    # Window models mask closed hours; a stream model would fill them with its own forecasts, so
    # the default spec trains a window model on such a series.
    accepted = train(client, auth, sid, horizon=24)
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, accepted["job"]["id"])["status"] in
               ("succeeded", "failed"))
    worker.shutdown()
    job = job_status(client, auth, accepted["job"]["id"])
    assert job["status"] == "succeeded", job
    model = client.get(f"/v1/models/{accepted['model']['id']}", headers=auth).json()
    assert model["resolved_spec"]["stateful"] is False
    metrics = model["metrics"]
    assert metrics["baseline"] == {"name": "seasonal_naive", "lag": 168}
    naive = metrics["full_horizon"]["seasonal_naive"]
    assert naive["mae"] == pytest.approx(1.68, abs=1e-3) and naive["mase"] == pytest.approx(1.0)
    assert np.isfinite(metrics["full_horizon"]["model"]["mae"])
    assert all(0 <= c <= 1 for c in metrics["interval_coverage_by_step"]["95"])
    points = client.get(f"/v1/series/{sid}/forecast?horizon=24", headers=auth).json()["points"]
    last = stamps[open_][-1]
    assert [p["ts"] for p in points] == [f"{t:%Y-%m-%dT%H:%M:%S}Z" for t in
                                         pd.date_range(last, periods=25, freq="h")[1:]]
    assert all(np.isfinite(p["mean"]) for p in points)


@pytest.mark.parametrize(("freq", "years", "window", "horizon"), [
    ("W-SAT", 6, 26, 13), ("MS", 14, 12, 6), ("QS", 40, 8, 4),
])
def test_calendar_series_forecasts_after_new_readings(
        client: TestClient, auth: dict[str, str], settings: Settings, freq: str, years: int,
        window: int, horizon: int) -> None:
    # Weeks, months and quarters have no fixed length: following new readings must count steps
    # on the calendar. Train, append, forecast, append, forecast, each forecast from the newest.
    per_year = {"W-SAT": 52, "MS": 12, "QS": 4}[freq]
    stamps = pd.date_range("1990-01-06", periods=(years + 3) * per_year, freq=freq)
    values = 1000 + 200 * np.sin(2 * np.pi * np.arange(len(stamps)) / per_year)
    known = years * per_year
    kept = np.setdiff1d(np.arange(known), [10, 11, 30])  # missing steps in the history

    def upload(rows: np.ndarray) -> None:
        csv = "ts,value\n" + "".join(f"{stamps[i]:%Y-%m-%d},{values[i]:.3f}\n" for i in rows)
        response = client.post(f"/v1/series/{sid}/readings", content=csv.encode(),
                               headers={**auth, "Content-Type": "text/csv"})
        assert response.status_code == 200, response.text

    def forecast_after(last: int) -> None:
        response = client.get(f"/v1/series/{sid}/forecast?horizon={horizon}", headers=auth)
        assert response.status_code == 200, response.text
        points = response.json()["points"]
        assert [p["ts"][:10] for p in points] == \
            [f"{t:%Y-%m-%d}" for t in stamps[last + 1:last + 1 + horizon]]
        assert all(np.isfinite(p["mean"]) for p in points)

    sid = client.post("/v1/series", json={"name": freq, "freq": freq}, headers=auth).json()["id"]
    upload(kept)
    accepted = train(client, auth, sid, window=window, horizon=horizon, epochs=1)
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, accepted["job"]["id"])["status"] in
               ("succeeded", "failed"))
    worker.shutdown()
    assert job_status(client, auth, accepted["job"]["id"])["status"] == "succeeded"
    forecast_after(known - 1)
    half = per_year // 2
    # The first append skips a step, which the model fills with its own forecast.
    upload(np.arange(known + 1, known + half))
    forecast_after(known + half - 1)
    upload(np.arange(known + half, known + 2 * per_year))
    forecast_after(known + 2 * per_year - 1)
