"""The worker process: claims jobs, runs each in a child process, keeps their leases alive."""

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from sqlalchemy import pool
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.config import Settings
from app.db import jobs, workers
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.jobs import ClaimedJob, JobKind, JobStatus
from app.db.tables import utcnow
from app.worker.fits_task import run_fits_job
from app.worker.maintenance_task import run_partitions_job
from app.worker.parent import watch_parent
from app.worker.schedule import SCHEDULE_INTERVAL_S, schedule_due
from app.worker.training_task import run_training_job

logger = logging.getLogger("statecast.worker")
# A child asked to stop (time limit, shutdown) gets this long before it is killed.
CHILD_STOP_GRACE_S = 5.0
# After a database error the loop waits this long, doubling per failed round up to the cap: an
# outage costs a few quiet retries, not a dead worker.
DB_RETRY_FIRST_S = 0.5
DB_RETRY_MAX_S = 10.0
# What a worker survives: the database unreachable, restarting, or (SQLite) locked too long.
TRANSIENT_DB_ERRORS = (DBAPIError, PoolTimeoutError)
# What runs each kind of job, in a child process of its own: (settings as JSON, the job).
TASKS: dict[JobKind, Callable[[dict[str, Any], ClaimedJob], None]] = {
    JobKind.TRAIN: run_training_job,
    JobKind.PARTITIONS: run_partitions_job,
    JobKind.SEASONAL_FITS: run_fits_job,
}


@dataclass
class Running:
    job: ClaimedJob
    process: BaseProcess
    started: float = field(default_factory=time.monotonic)


class Worker:
    """Runs up to `concurrency` jobs at once, each training in a child process of its own."""

    def __init__(self, settings: Settings, *, concurrency: int = 1,
                 worker_id: str | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency}")
        self.settings = settings
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.engine = create_db_engine(settings.database_url, poolclass=pool.NullPool,
                                       lock_timeout_s=settings.database_lock_timeout_s)
        self.factory = create_session_factory(self.engine)
        self.running: dict[int, Running] = {}
        self.stopping = threading.Event()
        # spawn, not fork: a forked child would inherit the parent's database connections and
        # locks; a fresh interpreter starts clean.
        self.context = multiprocessing.get_context("spawn")
        self._last_renewal = 0.0
        self._last_pruned = -workers.FORGET_EVERY_S  # the first round prunes
        self._last_schedule = -SCHEDULE_INTERVAL_S
        # After a claim, look again at once: a backlog drains without poll-interval pauses.
        self._claimed_last = False

    def run(self) -> None:
        """Work until `stop()` (or SIGTERM/SIGINT); running jobs are stopped and requeued."""
        logger.info("worker started", extra={"action": "worker_start", "worker_id": self.worker_id,
                                             "concurrency": self.concurrency})
        failing_since: float | None = None
        retry_s = DB_RETRY_FIRST_S
        while not self.stopping.is_set():
            try:
                self.tick()
            except TRANSIENT_DB_ERRORS as exc:
                if failing_since is None:  # once per episode, not once per retry
                    failing_since = time.monotonic()
                    logger.warning("database unavailable; retrying", extra={
                        "action": "worker_db_error", "worker_id": self.worker_id,
                        "error": str(exc).splitlines()[0][:300]})
                self.stopping.wait(retry_s)
                retry_s = min(retry_s * 2, DB_RETRY_MAX_S)
                continue
            if failing_since is not None:
                logger.warning("database available again", extra={
                    "action": "worker_db_recovered", "worker_id": self.worker_id,
                    "outage_s": round(time.monotonic() - failing_since, 3)})
                failing_since, retry_s = None, DB_RETRY_FIRST_S
            self.stopping.wait(self.settings.worker_poll_interval_s
                               if len(self.running) >= self.concurrency or not self._claimed_last
                               else 0)
        self.shutdown()

    def tick(self) -> None:
        """One round: reap dead children, renew leases, requeue expired jobs, claim new ones."""
        self._reap()
        self._enforce_time_limits()
        now = time.monotonic()
        if now - self._last_renewal >= self.settings.job_lease_s / 3:
            self._renew_leases()
            self._last_renewal = now
        prune = now - self._last_pruned >= workers.FORGET_EVERY_S
        with transaction(self.factory, write=True) as session:
            workers.heartbeat(session=session, worker_id=self.worker_id)
            requeued = jobs.requeue_expired(session=session)
            forgotten = workers.forget_stale(session=session) if prune else 0
        if prune:
            self._last_pruned = now
        if forgotten:
            logger.info("forgot workers that stopped polling", extra={
                "action": "forget_stale_workers", "workers": forgotten})
        if now - self._last_schedule >= SCHEDULE_INTERVAL_S:
            with transaction(self.factory, write=True) as session:
                scheduled = schedule_due(session=session, settings=self.settings, now=utcnow())
            self._last_schedule = now
            if scheduled:
                logger.info("scheduled jobs queued", extra={"action": "schedule_jobs",
                                                            "keys": scheduled})
        if requeued:
            logger.warning("requeued jobs with expired leases",
                           extra={"action": "requeue_expired", "job_ids": requeued})
        self._claimed_last = False
        if len(self.running) < self.concurrency:
            with transaction(self.factory, write=True) as session:
                claimed = jobs.claim(session=session, worker_id=self.worker_id,
                                     lease_s=self.settings.job_lease_s)
            if claimed is not None:
                self._start(claimed)
                self._claimed_last = True

    def _start(self, job: ClaimedJob) -> None:
        process = self.context.Process(
            target=TASKS[job.kind], args=(self.settings.model_dump(mode="json"), job),
            name=f"statecast-job-{job.id}", daemon=True)
        process.start()
        self.running[job.id] = Running(job=job, process=process)
        logger.info("job claimed", extra={"action": "claim_job", "job_id": job.id,
                                          "attempt": job.attempt, "kind": str(job.kind),
                                          "pid": process.pid})

    def _reap(self) -> None:
        for job_id, entry in list(self.running.items()):
            if entry.process.is_alive():
                continue
            entry.process.join()
            code = entry.process.exitcode
            if code == 0:
                del self.running[job_id]
                continue
            reason = (f"the training process was killed by signal {-code}" if code and code < 0
                      else f"the training process exited with code {code}")
            with transaction(self.factory, write=True) as session:
                outcome = jobs.retry_or_fail(session=session, job=entry.job, reason=reason)
            # Forgotten only once recorded: a database error here is retried next round.
            del self.running[job_id]
            logger.warning("training process died", extra={
                "action": "job_crashed", "job_id": job_id, "exit_code": code,
                "outcome": str(outcome)})

    def _enforce_time_limits(self) -> None:
        limit_s = self.settings.job_time_limit_s
        for job_id, entry in list(self.running.items()):
            if time.monotonic() - entry.started < limit_s:
                continue
            self._stop_child(entry)
            with transaction(self.factory, write=True) as session:
                jobs.finish(session=session, job=entry.job, status=JobStatus.FAILED,
                            error=f"the job ran past its time limit of {limit_s:g} s")
            del self.running[job_id]
            logger.warning("job timed out", extra={"action": "job_timeout", "job_id": job_id})

    def _renew_leases(self) -> None:
        for entry in self.running.values():
            with transaction(self.factory) as session:
                jobs.renew(session=session, job=entry.job, lease_s=self.settings.job_lease_s)

    @staticmethod
    def _stop_child(entry: Running) -> None:
        entry.process.terminate()
        entry.process.join(CHILD_STOP_GRACE_S)
        if entry.process.is_alive():
            entry.process.kill()
            entry.process.join()

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop the children and hand their jobs back to the queue for another worker."""
        for entry in self.running.values():
            self._stop_child(entry)
        try:
            with transaction(self.factory, write=True) as session:
                for entry in self.running.values():
                    jobs.release(session=session, job=entry.job)
                workers.forget(session=session, worker_id=self.worker_id)
        except TRANSIENT_DB_ERRORS:  # the leases expire and another worker requeues the jobs
            logger.warning("could not release jobs at shutdown", extra={
                "action": "worker_release_failed", "worker_id": self.worker_id})
        self.running.clear()
        self.engine.dispose()
        logger.info("worker stopped", extra={"action": "worker_stop", "worker_id": self.worker_id})


def run_worker(settings: Settings, concurrency: int, parent_pid: int | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT, or until process `parent_pid` (the `statecast
    serve` that embeds it) is gone: a killed server leaves no worker behind."""
    worker = Worker(settings, concurrency=concurrency)

    def handle(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    if parent_pid is not None:
        watch_parent(parent_pid, worker.stop, "statecast serve gone; worker stopping",
                     {"worker_id": worker.worker_id})
    worker.run()
