"""Job gauges read from the database at scrape time, right whichever process moved the jobs."""

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.jobs import JobStatus, queue_depth
from app.db.tables import Job
from app.db.workers import queue_health
from app.observability.metrics import (
    JOBS,
    OLDEST_QUEUED_AGE,
    QUEUE_DEPTH,
    QUEUE_STALLED,
    WORKER_LAST_POLL_AGE,
    WORKERS_ALIVE,
)

logger = logging.getLogger("statecast.metrics")


def refresh_job_gauges(factory: sessionmaker[Session], *, stale_after_s: float) -> None:
    """Set the job, queue and worker liveness gauges from the jobs and workers tables.

    A database that cannot be reached leaves the last values and logs why, so a scrape never
    fails for it (readiness reports the database).
    """
    try:
        with factory() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            counts = {str(status): int(count) for status, count in rows}
            depth = queue_depth(session=session)
            health = queue_health(session=session, stale_after_s=stale_after_s)
    except Exception as exc:  # any driver error: keep serving the other metrics
        logger.warning("job gauges not refreshed", extra={"action": "refresh_job_gauges",
                                                          "error": str(exc)[:300]})
        return
    for status in JobStatus:
        JOBS.labels(status.value).set(counts.get(status.value, 0))
    QUEUE_DEPTH.set(depth)
    WORKERS_ALIVE.set(health.workers_alive)
    WORKER_LAST_POLL_AGE.set(-1 if health.last_poll_age_s is None else health.last_poll_age_s)
    OLDEST_QUEUED_AGE.set(health.oldest_queued_age_s or 0.0)
    QUEUE_STALLED.set(int(health.stalled))
