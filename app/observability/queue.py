"""Job gauges read from the database at scrape time, right whichever process moved the jobs."""

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.jobs import JobStatus, queue_depth
from app.db.tables import Job
from app.observability.metrics import JOBS, QUEUE_DEPTH

logger = logging.getLogger("statecast.metrics")


def refresh_job_gauges(factory: sessionmaker[Session]) -> None:
    """Set `statecast_jobs{status}` and `statecast_queue_depth` from the jobs table.

    A database that cannot be reached leaves the last values and logs why, so a scrape never
    fails for it (readiness reports the database).
    """
    try:
        with factory() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            counts = {str(status): int(count) for status, count in rows}
            depth = queue_depth(session=session)
    except Exception as exc:  # any driver error: keep serving the other metrics
        logger.warning("job gauges not refreshed", extra={"action": "refresh_job_gauges",
                                                          "error": str(exc)[:300]})
        return
    for status in JobStatus:
        JOBS.labels(status.value).set(counts.get(status.value, 0))
    QUEUE_DEPTH.set(depth)
