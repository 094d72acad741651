"""The promise, end to end on real server processes: restarts, replicas, concurrent retries."""

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.mmap_dict import MmapedDict

from app.config import Settings
from app.ml.forecaster import Forecaster
from tests.api.helpers import count_rows
from tests.server import ServerProcess
from tests.streams.conftest import (
    fits_made_ahead,
    hourly_values,
    install_model,
    load_series,
    upload,
)

pytestmark = pytest.mark.slow
# The warm-up ends at 20:00 (reading 212): the next day's fit, whose readings end at 21:00
# (`FIT_LEAD_S` before midnight), can be made ahead at once, as the workers would.
WARM = 213
LIVE = 24


def reference_state(artifact: Path, readings: int) -> dict[str, Any]:
    """What one sequential server ends with: warmed over WARM readings, then one at a time."""
    forecaster = Forecaster.load(artifact)
    stamps, values = hourly_values()
    seasonal = forecaster.history_seasonal(values, stamps) if forecaster.needs_seasonal else None
    state = forecaster.warm(values[:WARM], stamps[:WARM], forecaster.initial_state("load"),
                            seasonal=seasonal)
    for i in range(WARM, readings):
        state = forecaster.warm(values[i:i + 1], stamps[i:i + 1], state, seasonal=seasonal)
    return state


def prepare(client: Any, auth: dict[str, str], settings: Settings, artifact: Path) -> None:
    sid = load_series(client, auth, WARM)
    install_model(settings, artifact, sid)
    created = client.post("/v1/streams", json={"series_id": sid, "stream_id": "m"}, headers=auth)
    assert created.status_code == 201, created.text
    fits_made_ahead(settings)  # the next day's fit, as the workers make it


def send(url: str, auth: dict[str, str], i: int) -> httpx.Response:
    stamps, values = hourly_values()
    return httpx.post(f"{url}/v1/streams/m/readings", headers=auth, timeout=30, json={
        "readings": [{"ts": stamps[i].isoformat(), "value": float(values[i])}]})


def send_at_once(url: str, auth: dict[str, str], i: int, clients: int) -> list[int]:
    """Reading `i` sent by `clients` clients at the same moment (retries racing); the statuses."""
    gate = threading.Barrier(clients)
    statuses: list[int] = []

    def client() -> None:
        gate.wait()
        statuses.append(send(url, auth, i).status_code)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def final_state(url: str, auth: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/streams/m/state", headers=auth).json()
    return body["state"]


def test_restart_after_sigkill_continues_as_if_nothing_happened(
        client: Any, auth: dict[str, str], settings: Settings, artifacts: dict[str, Path],
        tmp_path: Path) -> None:
    prepare(client, auth, settings, artifacts["lstm_stateful"])
    server = ServerProcess(settings, tmp_path / "serve.log")
    acknowledged: list[int] = []

    def client_loop() -> None:
        for i in range(WARM, WARM + LIVE):
            try:
                if send(server.url, auth, i).status_code != 200:
                    return
            except httpx.TransportError:
                return
            acknowledged.append(i)

    racer = threading.Thread(target=client_loop)
    racer.start()
    while len(acknowledged) < LIVE // 3:
        threading.Event().wait(0.01)
    server.kill()  # mid-stream, maybe mid-request: whatever was acknowledged must survive
    racer.join()
    assert WARM + LIVE // 3 <= WARM + len(acknowledged) < WARM + LIVE
    assert count_rows(settings.database_url, "readings") >= WARM + len(acknowledged)
    server = ServerProcess(settings, tmp_path / "serve.log")
    try:
        resume = WARM + len(acknowledged)  # the client re-sends what was not acknowledged
        for i in range(resume, WARM + LIVE):
            assert send(server.url, auth, i).status_code == 200
        assert final_state(server.url, auth) == reference_state(artifacts["lstm_stateful"],
                                                                WARM + LIVE)
    finally:
        server.stop()
    assert count_rows(settings.database_url, "readings") == WARM + LIVE


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # replicas share PostgreSQL
def test_two_replicas_alternating_end_like_one(
        client: Any, auth: dict[str, str], settings: Settings, artifacts: dict[str, Path],
        tmp_path: Path) -> None:
    prepare(client, auth, settings, artifacts["lstm_stateful"])
    replicas = [ServerProcess(settings, tmp_path / f"serve{i}.log") for i in range(2)]
    try:
        for n, i in enumerate(range(WARM, WARM + LIVE)):
            assert send(replicas[n % 2].url, auth, i).status_code == 200
        states = [final_state(r.url, auth) for r in replicas]
    finally:
        for replica in replicas:
            replica.stop()
    assert states[0] == states[1] == reference_state(artifacts["lstm_stateful"], WARM + LIVE)


def test_concurrent_retries_apply_each_reading_once(
        client: Any, auth: dict[str, str], settings: Settings, artifacts: dict[str, Path],
        tmp_path: Path) -> None:
    prepare(client, auth, settings, artifacts["lstm_stateful"])
    server = ServerProcess(settings, tmp_path / "serve.log")
    statuses: list[int] = []
    try:
        for i in range(WARM, WARM + LIVE // 2):
            statuses += send_at_once(server.url, auth, i, clients=4)
        state = final_state(server.url, auth)
        detail = httpx.get(f"{server.url}/v1/streams/m", headers=auth).json()
    finally:
        server.stop()
    assert set(statuses) == {200}
    assert detail["readings_applied"] == LIVE // 2
    assert count_rows(settings.database_url, "readings") == WARM + LIVE // 2
    assert state == reference_state(artifacts["lstm_stateful"], WARM + LIVE // 2)


def processes_that_served_posts(metrics_dir: Path) -> set[int]:
    """Pids whose multiprocess counters (`counter_<pid>.db`) hold a stream post they answered."""
    served = set()
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if (name == "statecast_http_requests_total" and value > 0
                    and labels.get("route", "").endswith("/readings")
                    and labels.get("method") == "POST"):
                served.add(int(path.stem.removeprefix("counter_")))
    return served


def test_two_api_processes_apply_each_reading_once(
        client: Any, auth: dict[str, str], settings: Settings, artifacts: dict[str, Path],
        tmp_path: Path) -> None:
    prepare(client, auth, settings, artifacts["lstm_stateful"])
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = ServerProcess(settings, tmp_path / "serve.log", STATECAST_API_PROCESSES="2",
                           PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    statuses: list[int] = []
    try:
        for i in range(WARM, WARM + LIVE):
            # Six new connections at once: the kernel spreads them over both processes.
            statuses += send_at_once(server.url, auth, i, clients=6)
        state = final_state(server.url, auth)
        detail = httpx.get(f"{server.url}/v1/streams/m", headers=auth).json()
    finally:
        server.stop()
    assert set(statuses) == {200}
    assert len(processes_that_served_posts(metrics_dir)) == 2
    assert detail["readings_applied"] == LIVE
    assert count_rows(settings.database_url, "readings") == WARM + LIVE
    assert state == reference_state(artifacts["lstm_stateful"], WARM + LIVE)


def test_healthz_answers_fast_while_a_job_trains(client: Any, auth: dict[str, str],
                                                 settings: Settings, tmp_path: Path) -> None:
    stamps, values = hourly_values(24 * 60)
    sid = client.post("/v1/series", json={"name": "big", "freq": "h"}, headers=auth).json()["id"]
    upload(client, auth, sid, stamps, values)
    server = ServerProcess(settings, tmp_path / "serve.log", workers=1)
    try:
        job = httpx.post(f"{server.url}/v1/models", headers=auth, json={
            "series_ids": [sid], "spec": {"units": 32, "epochs": 40, "patience": 40}}).json()["job"]
        deadline = 120
        for _ in range(deadline * 10):
            status = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=auth).json()
            if status["status"] == "running" and status.get("progress"):
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail(f"the job never started: {status}")
        latencies = []
        for _ in range(30):
            response = httpx.get(f"{server.url}/healthz", timeout=5)
            assert response.status_code == 200
            latencies.append(response.elapsed.total_seconds())
            threading.Event().wait(0.05)
        running = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=auth).json()["status"]
        httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel", headers=auth)
    finally:
        server.stop()
    assert running == "running", "the job finished before the latencies were measured"
    # Liveness, not speed (bench/ measures speed): a training job must never stall the API.
    assert float(np.median(latencies)) < 0.5 and max(latencies) < 5.0, latencies
