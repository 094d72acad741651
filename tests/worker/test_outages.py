"""A worker keeps working through a database outage: stopped PostgreSQL, locked SQLite file."""

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrations import upgrade
from app.main import create_app
from app.worker.runner import Worker
from tests.conftest import make_key
from tests.pgcluster import postgres_cluster
from tests.worker.helpers import job_status, preloaded_context, series_with_data, train

pytestmark = pytest.mark.slow
# Long enough for three failed rounds (the retries wait 0.5, 1, 2 s), short enough that the
# retry 2 s after the third finds the database back instead of waiting out a 4 s pause.
OUTAGE_S = 2.5


@contextmanager
def worker_thread(settings: Settings) -> Iterator[Worker]:
    """A worker running its real loop (with its error handling) in a thread."""
    settings.worker_poll_interval_s = 0.1
    worker = Worker(settings)
    worker.context = preloaded_context()  # the loop is under test, not how its child starts
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive()


@contextmanager
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    logger = logging.getLogger("statecast")
    propagate, logger.propagate = logger.propagate, True
    try:
        with caplog.at_level(logging.WARNING, logger="statecast.worker"):
            yield
    finally:
        logger.propagate = propagate


def survive_outage_then_train(settings: Settings, outage: Callable[[], None],
                              caplog: pytest.LogCaptureFixture) -> None:
    with captured(caplog), worker_thread(settings):
        time.sleep(0.5)  # a few polls before the outage
        outage()
        # Jobs submitted once the database is back are claimed by the same worker and succeed.
        with TestClient(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {make_key(settings, 'alice')}"}
            sid = series_with_data(client, auth, days=6)
            job_id = train(client, auth, sid, epochs=1)["job"]["id"]
            deadline = time.monotonic() + 180
            while job_status(client, auth, job_id)["status"] not in ("succeeded", "failed"):
                assert time.monotonic() < deadline, "the job was never finished"
                time.sleep(0.2)
            job = job_status(client, auth, job_id)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1
    messages = [r.getMessage() for r in caplog.records]
    # The outage was seen, logged once per episode (not once per retry: the worker retried
    # for seconds), and recovered from. (A handler left by another test may copy each record.)
    failing = messages.count("database unavailable; retrying")
    assert failing >= 1 and failing == messages.count("database available again"), messages


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_worker_survives_a_locked_sqlite_file(settings: Settings,
                                              caplog: pytest.LogCaptureFixture) -> None:
    settings.database_lock_timeout_s = 0.2
    path = settings.database_url.removeprefix("sqlite:///")

    def outage() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(OUTAGE_S)
        holder.execute("COMMIT")
        holder.close()

    survive_outage_then_train(settings, outage, caplog)


def test_worker_survives_a_stopped_postgresql(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with postgres_cluster() as cluster:
        upgrade(cluster.url)
        settings = Settings(database_url=cluster.url, model_dir=tmp_path / "models",
                            key_file=tmp_path / "api_key", auto_migrate=False)

        def outage() -> None:
            cluster.stop()
            time.sleep(OUTAGE_S)
            cluster.start()

        survive_outage_then_train(settings, outage, caplog)
