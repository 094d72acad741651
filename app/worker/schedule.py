"""The service's own jobs, queued by the workers as they poll: once per key, however many poll."""

import math
from datetime import datetime

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import jobs, partitions
from app.db.jobs import JobKind
from app.db.tables import ForecastModel, Stream

# How often a worker looks for scheduled work that is due; every worker does, and the jobs'
# dedupe keys make each one job.
SCHEDULE_INTERVAL_S = 60.0
# Series per seasonal-fits job (~0.1 s of CPU each): a fleet's fits spread over the workers.
FIT_SERIES_PER_JOB = 2_000


def partitions_key(now: datetime) -> str:
    """Partition maintenance runs once an hour: it is cheap when there is nothing to do."""
    return f"{JobKind.PARTITIONS}:{now:%Y-%m-%dT%H}"


def fits_key(model_id: int, now: datetime, shard: int, shards: int) -> str:
    """Each model's fits are made hourly: a run makes a series' next local day's fit within the
    hour its readings reach that fit's cutoff (`FIT_LEAD_S` before the day), and makes again any
    fit dropped since."""
    return f"{JobKind.SEASONAL_FITS}:{model_id}:{now:%Y-%m-%dT%H}:{shard}/{shards}"


def schedule_due(*, session: Session, settings: Settings, now: datetime) -> list[str]:
    """Queue the scheduled jobs due at `now` that no worker queued yet; their keys."""
    queued = []
    if partitions.is_partitioned(session.connection()):
        key = partitions_key(now)
        if jobs.schedule(session=session, kind=JobKind.PARTITIONS, dedupe_key=key,
                         max_attempts=settings.job_max_attempts):
            queued.append(key)
    streamed = session.execute(
        select(Stream.model_id, func.count(distinct(Stream.series_id)))
        .join(ForecastModel, ForecastModel.id == Stream.model_id)
        .where(ForecastModel.status == "ready").group_by(Stream.model_id)).all()
    for model_id, series in streamed:
        if model_id is None:  # the join leaves none; the column is nullable
            continue
        shards = math.ceil(series / FIT_SERIES_PER_JOB)
        for shard in range(shards):
            key = fits_key(model_id, now, shard, shards)
            if jobs.schedule(session=session, kind=JobKind.SEASONAL_FITS, dedupe_key=key,
                             model_id=model_id, params={"shard": shard, "shards": shards},
                             max_attempts=settings.job_max_attempts):
                queued.append(key)
    return queued
