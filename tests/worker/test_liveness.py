"""Worker liveness: /readyz fails and /metrics says so when queued jobs have no worker."""

import sys
import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import workers
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.tables import WorkerBeat, utcnow
from app.worker.runner import Worker
from app.worker.supervisor import Supervisor
from tests.api.helpers import fill_series


def beat(settings: Settings, worker_id: str, age_s: float = 0.0) -> None:
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        workers.heartbeat(session=session, worker_id=worker_id,
                          now=utcnow() - timedelta(seconds=age_s))
    engine.dispose()


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not on /metrics")


def test_readyz_fails_while_jobs_wait_and_no_worker_polls(client: TestClient, auth: dict[str, str],
                                                          settings: Settings) -> None:
    assert client.get("/readyz").status_code == 200  # nothing queued: no worker needed
    assert metric(client, "statecast_worker_last_poll_age_seconds") == -1
    sid = client.post("/v1/series", json={"name": "s", "freq": "h"}, headers=auth).json()["id"]
    fill_series(client, auth, sid)  # long enough to train: a short series is refused first
    assert client.post("/v1/models", json={"series_ids": [sid]}, headers=auth).status_code == 202

    response = client.get("/readyz")
    assert response.status_code == 503
    assert "1 job(s) queued and no worker polled" in response.json()["reason"]
    assert metric(client, "statecast_queue_stalled") == 1
    assert metric(client, "statecast_workers_alive") == 0
    assert metric(client, "statecast_oldest_queued_job_age_seconds") > 0

    # A worker that last polled long ago is dead as far as the queue is concerned...
    beat(settings, "old-worker", age_s=settings.worker_stale_after_s + 5)
    assert client.get("/readyz").status_code == 503
    assert metric(client, "statecast_worker_last_poll_age_seconds") > settings.worker_stale_after_s
    # ...one that polled just now makes the service ready again.
    beat(settings, "live-worker")
    assert client.get("/readyz").status_code == 200
    assert metric(client, "statecast_workers_alive") == 1
    assert metric(client, "statecast_queue_stalled") == 0


def test_readyz_hides_the_driver_error(settings: Settings) -> None:
    from app.main import create_app

    settings.database_url = "postgresql+psycopg://secret_user@127.0.0.1:1/secret_db"
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "database unreachable"
    assert "secret" not in response.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_supervisor_reaps_and_restarts_dead_workers_with_backoff() -> None:
    clock = FakeClock()
    supervisor = Supervisor([sys.executable, "-c", "raise SystemExit(3)"], 1, clock=clock)
    slot = supervisor.slots[0]
    supervisor._spawn(slot)
    try:
        delays = []
        for _ in range(3):
            assert slot.process is not None
            slot.process.wait()
            supervisor.check()  # reaps it and schedules the restart
            assert slot.process.returncode == 3 and slot.restart_at is not None
            delays.append(slot.restart_at - clock.now)
            clock.now = slot.restart_at - 0.01
            supervisor.check()
            assert slot.restart_at is not None  # not before its backoff is over
            clock.now = slot.restart_at
            supervisor.check()
            assert slot.restart_at is None and slot.process.returncode is None
        assert delays == [1.0, 2.0, 4.0]
        assert slot.restarts == 3
    finally:
        supervisor.stop()


def test_supervisor_stops_its_workers() -> None:
    supervisor = Supervisor([sys.executable, "-c", "import time; time.sleep(60)"], 2)
    supervisor.start()
    started = list(supervisor.processes)
    time.sleep(0.2)
    supervisor.stop()
    assert len(started) == 2 and all(p.returncode is not None for p in started)


def worker_ids(settings: Settings) -> set[str]:
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine)) as session:
        ids = set(session.scalars(select(WorkerBeat.id)))
    engine.dispose()
    return ids


def test_a_worker_prunes_the_rows_of_workers_that_stopped_polling(settings: Settings) -> None:
    beat(settings, "crashed-yesterday", age_s=workers.FORGET_AFTER_S + 60)
    beat(settings, "quiet-a-while", age_s=workers.FORGET_AFTER_S - 60)
    worker = Worker(settings, worker_id="pruner")
    try:
        worker.tick()
        assert worker_ids(settings) == {"quiet-a-while", "pruner"}
        # Not every round: a row gone stale since waits for the next pruning.
        beat(settings, "crashed-today", age_s=workers.FORGET_AFTER_S + 60)
        worker.tick()
        assert "crashed-today" in worker_ids(settings)
        worker._last_pruned -= workers.FORGET_EVERY_S
        worker.tick()
        assert worker_ids(settings) == {"quiet-a-while", "pruner"}
    finally:
        worker.shutdown()
    assert worker_ids(settings) == {"quiet-a-while"}
