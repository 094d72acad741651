"""A worker killed mid-training: its child stops, and the next attempt yields the one model."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import jobs
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.jobs import ClaimedJob
from tests.test_cli import cli_env, statecast_argv
from tests.worker.helpers import fast_worker, job_status, series_with_data, train, work_until
from tests.worker.test_queue import enqueue_jobs


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def training_child(pid: int) -> int:
    """The worker's training process (not multiprocessing's resource tracker)."""
    [child] = [c for c in children_of(pid)
               if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]
    return child


def is_running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_attempt_fence_is_the_attempt_number(settings: Settings) -> None:
    [job_id] = enqueue_jobs(settings, 1)
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    with transaction(factory, write=True) as session:
        first = jobs.claim(session=session, worker_id="w1", lease_s=30)
        assert first is not None and jobs.is_current(session=session, job=first)
        # Its worker died; the job is requeued and claimed again: `running` once more...
        jobs.retry_or_fail(session=session, job=first, reason="killed")
        second = jobs.claim(session=session, worker_id="w2", lease_s=30)
        assert second is not None and second.attempt == 2
        # ...but only the new attempt is current.
        assert not jobs.is_current(session=session, job=first)
        assert jobs.is_current(session=session, job=second)
        assert not jobs.is_current(session=session, job=ClaimedJob(
            id=job_id + 1, model_id=0, tenant_id=0, attempt=1, max_attempts=3))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_sigkilled_worker_loses_no_model(client: TestClient, auth: dict[str, str],
                                         settings: Settings, tmp_path: Path) -> None:
    sid = series_with_data(client, auth, days=6)
    accepted = train(client, auth, sid, epochs=15, patience=1000)
    job_id, model_id = accepted["job"]["id"], accepted["model"]["id"]
    log_path = tmp_path / "worker.log"
    env = cli_env(STATECAST_DATABASE_URL=settings.database_url,
                  STATECAST_MODEL_DIR=str(settings.model_dir), STATECAST_JOB_LEASE_S="3",
                  STATECAST_WORKER_POLL_INTERVAL_S="0.2", STATECAST_LOG_FORMAT="text")
    with log_path.open("w") as log:
        parent = subprocess.Popen([*statecast_argv(), "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (job_status(client, auth, job_id).get("progress") or {}).get("epoch"),
                 120, "training never reported an epoch")
        child = training_child(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        # The orphan notices its worker is gone and stops at once instead of finishing...
        wait_for(lambda: not is_running(child), 30, "the orphaned training process kept running")
        assert "worker process gone; training abandoned" in log_path.read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    # ...and the next attempt, once the lease runs out, trains and installs the model.
    settings.job_lease_s = 3
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, job_id)["status"] in
               ("succeeded", "failed"), timeout_s=240)
    worker.shutdown()
    job = job_status(client, auth, job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert client.get(f"/v1/models/{model_id}", headers=auth).json()["status"] == "ready"
    assert sorted(p.name for p in settings.model_dir.iterdir()) == [str(model_id)]
    assert (settings.model_dir / str(model_id) / "meta.json").exists()


def test_a_sigkilled_server_leaves_no_embedded_worker(settings: Settings, tmp_path: Path) -> None:
    """`statecast serve` killed outright (no shutdown code runs): its worker notices and stops,
    instead of running on re-parented to PID 1, one more per restart."""
    from tests.server import ServerProcess

    server = ServerProcess(settings, tmp_path / "serve.log", workers=1)
    try:
        wait_for(lambda: any(b"worker" in Path(f"/proc/{c}/cmdline").read_bytes()
                             for c in children_of(server.process.pid)), 30, "no worker started")
        [worker] = [c for c in children_of(server.process.pid)
                    if b"worker" in Path(f"/proc/{c}/cmdline").read_bytes()]
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        wait_for(lambda: not is_running(worker), 30, "the embedded worker outlived its server")
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            server.kill()
