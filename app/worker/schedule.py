"""The service's own jobs, queued by the workers as they poll: once per key, however many poll."""

from datetime import datetime

from sqlalchemy.orm import Session

from app.config import Settings
from app.db import jobs, partitions
from app.db.jobs import JobKind

# How often a worker looks for scheduled work that is due; every worker does, and the jobs'
# dedupe keys make each one job.
SCHEDULE_INTERVAL_S = 60.0


def partitions_key(now: datetime) -> str:
    """Partition maintenance runs once an hour: it is cheap when there is nothing to do."""
    return f"{JobKind.PARTITIONS}:{now:%Y-%m-%dT%H}"


def schedule_due(*, session: Session, settings: Settings, now: datetime) -> list[str]:
    """Queue the scheduled jobs due at `now` that no worker queued yet; their keys."""
    queued = []
    if partitions.is_partitioned(session.connection()):
        key = partitions_key(now)
        if jobs.schedule(session=session, kind=JobKind.PARTITIONS, dedupe_key=key,
                         max_attempts=settings.job_max_attempts):
            queued.append(key)
    return queued
