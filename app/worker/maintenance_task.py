"""The readings' partition maintenance (PostgreSQL), a job the workers claim like training.

Each run: creates the partitions of this month and the next `MONTHS_AHEAD`; moves whatever the
DEFAULT partition took in (readings of months that had no partition yet) into partitions of their
own months; and, with `STATECAST_READINGS_RETENTION_DAYS` set, drops whole months of readings that
nothing needs any more (`retention_cutoff_s`). Every step is idempotent, so a retried or repeated
run does what is left and nothing twice.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db import jobs, partitions
from app.db.engine import transaction
from app.db.jobs import ClaimedJob, JobStatus
from app.ml.forecaster import STREAM_WARM_DAYS
from app.ml.seasonal import FIT_SEASONS, candidate_periods
from app.observability.metrics import JOBS_FINISHED
from app.timegrid import step_seconds
from app.worker.child import child_context

logger = logging.getLogger("statecast.worker")
MONTHS_AHEAD = 2
DAY_S = 86_400


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    moved_from_default: int = 0
    dropped: list[str] = field(default_factory=list)
    retention_cutoff_s: int | None = None


def history_needed_steps(step_s: int, warm_steps: int) -> int:
    """Steps of a series before its newest reading that a stream's warm-up reads.

    A raw stream model warms over the newest `warm_steps` readings; a deseasonalised one over
    `STREAM_WARM_DAYS` days, each read against a seasonal fit of `FIT_SEASONS` of its longest
    season before that day (app/ml/stream_seasonal.py). The larger of the two is kept.
    """
    steps_per_day = DAY_S / step_s
    periods = candidate_periods(steps_per_day)
    seasonal = FIT_SEASONS * max(periods, default=0) + math.ceil(
        (STREAM_WARM_DAYS + 1) * steps_per_day)
    return max(warm_steps, seasonal)


def retention_cutoff_s(session: Session, *, now_s: int, retention_days: int,
                       warm_steps: int) -> int:
    """Readings before this may go: older than the retention, and needed by nothing.

    Needed are (1) every reading of a series that a queued or running training job covers
    (training reads the whole history), and (2) for each series with a stream, the readings
    within `history_needed_steps` steps of its grid before its newest reading (its warm-up, and
    the seasonal fits that warm-up reads). A series on an irregular grid (months) with a stream
    holds back every reading of its own.
    """
    cutoff = now_s - retention_days * DAY_S
    training = session.execute(text(
        "SELECT min(r.ts) FROM readings r JOIN model_series ms ON ms.series_id = r.series_id "
        "JOIN jobs j ON j.model_id = ms.model_id "
        "WHERE j.kind = 'train' AND j.status IN ('queued', 'running')")).scalar()
    if training is not None:
        cutoff = min(cutoff, int(training))
    streamed = session.execute(text(
        "SELECT s.freq, min(n.newest), min(n.oldest) FROM series s "
        "JOIN LATERAL (SELECT max(ts) AS newest, min(ts) AS oldest FROM readings r "
        "              WHERE r.series_id = s.id) n ON true "
        "WHERE s.id IN (SELECT series_id FROM streams) AND n.newest IS NOT NULL "
        "GROUP BY s.freq")).all()
    for freq, newest, oldest in streamed:
        step_s = step_seconds(freq)
        need = (int(oldest) if step_s is None
                else int(newest) - history_needed_steps(step_s, warm_steps) * step_s)
        cutoff = min(cutoff, need)
    return cutoff


def maintain_partitions(factory: sessionmaker[Session], *, now_s: int,
                        retention_days: int | None, warm_steps: int) -> MaintenanceReport:
    """One maintenance pass; each partition changes in a short transaction of its own."""
    report = MaintenanceReport()
    with transaction(factory) as session:
        if not partitions.is_partitioned(session.connection()):
            return report
        existing = {p.name for p in partitions.list_partitions(session.connection())}
        late = partitions.default_months(session.connection())
    this_month = partitions.month_start(now_s)
    ahead = [partitions.month_partition(int(partitions.add_months(this_month, k).timestamp()))
             for k in range(MONTHS_AHEAD + 1)]
    for partition in [*late, *ahead]:
        if partition.name in existing:
            continue
        with transaction(factory, write=True) as session:
            report.moved_from_default += partitions.attach_month(session.connection(), partition)
        existing.add(partition.name)
        report.created.append(partition.name)
    if retention_days is None:
        return report
    with transaction(factory) as session:
        cutoff = retention_cutoff_s(session, now_s=now_s, retention_days=retention_days,
                                    warm_steps=warm_steps)
        droppable = [p for p in partitions.list_partitions(session.connection())
                     if p.end_s <= cutoff]
    report.retention_cutoff_s = cutoff
    for partition in droppable:
        with transaction(factory, write=True) as session:
            # Checked again under the write: a training job queued since holds them back.
            again = retention_cutoff_s(session, now_s=now_s, retention_days=retention_days,
                                       warm_steps=warm_steps)
            if partition.end_s > again:
                break
            partitions.drop_partition(session.connection(), partition)
        report.dropped.append(partition.name)
    return report


def run_partitions_job(settings_data: dict[str, Any], job: ClaimedJob) -> None:
    """Entry point of the child process."""
    child = child_context(settings_data)
    settings, factory = child.settings, child.factory
    log = {"job_id": job.id, "attempt": job.attempt}
    report = maintain_partitions(factory, now_s=int(time.time()),
                                 retention_days=settings.readings_retention_days,
                                 warm_steps=settings.stream_warm_steps)
    with transaction(factory, write=True) as session:
        jobs.finish(session=session, job=job, status=JobStatus.SUCCEEDED)
    JOBS_FINISHED.labels(str(JobStatus.SUCCEEDED)).inc()
    logger.info("partitions maintained", extra={
        "action": "partitions", "partitions_created": report.created, "dropped": report.dropped,
        "moved_from_default": report.moved_from_default,
        "retention_cutoff_s": report.retention_cutoff_s, **log})
    child.engine.dispose()
