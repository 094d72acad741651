"""Seasonal fits made ahead: a job the workers claim, lease, retry and fence like training.

A deseasonalised stream model reads each reading against its day's seasonal fit, whose readings
end `FIT_LEAD_S` (a few hours) before the day begins (`app/ml/stream_seasonal.py`), so the fit can
be made during the last hours of the day before. For every series with a stream on the job's
model (its shard of them), the job makes the fit the series' next reading reads and, once the
readings it reads are in, the one for the local day after it (each series' own clock), unless
stored. It computes outside any write transaction, then stores each batch in a short one that
renews the job's lease fenced on the attempt, and checks that the readings a fit read did not
change since: a killed or fenced-off attempt stores nothing more, a retry makes what is left,
and the primary key keeps one fit per series, model and day.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import jobs, stream_rows
from app.db.engine import transaction
from app.db.jobs import ClaimedJob, JobStatus
from app.db.tables import Reading, Series, Stream
from app.ml.forecaster import Forecaster
from app.ml.seasonal import SeasonalCycles
from app.ml.stream_seasonal import due_fit_boundaries
from app.model_files import model_path
from app.observability.metrics import JOBS_FINISHED
from app.streams.seasonal_fits import FitRead, make_fit, store_fit, unchanged
from app.timegrid import NS_PER_S
from app.worker.child import child_context

logger = logging.getLogger("statecast.worker")
# Fits stored per write transaction: short enough that posts on SQLite barely wait for it.
FITS_PER_TRANSACTION = 50


@dataclass(frozen=True)
class MadeFit:
    series_id: int
    boundary_s: int
    fit: SeasonalCycles
    read: FitRead


def due_boundaries_s(forecaster: Forecaster, newest_s: int) -> list[int]:
    """The fits a series whose newest reading is at `newest_s` needs made now (`due_fit_boundaries`)."""
    return [b // NS_PER_S for b in due_fit_boundaries(
        newest_s * NS_PER_S, forecaster.step_size.value, forecaster.spec.steps_per_day,
        forecaster.features.timezone)]


def series_of_shard(session: Session, model_id: int, shard: int,
                    shards: int) -> list[tuple[Series, int]]:
    """The series with a stream on the model in this shard, with their newest reading."""
    newest = (select(Reading.series_id, func.max(Reading.ts).label("newest"))
              .where(Reading.series_id.in_(select(Stream.series_id)
                                           .where(Stream.model_id == model_id)))
              .group_by(Reading.series_id).subquery())
    rows = session.execute(select(Series, newest.c.newest)
                           .join(newest, newest.c.series_id == Series.id)
                           .where(Series.id % shards == shard).order_by(Series.id)).all()
    return [(series, int(ts)) for series, ts in rows]


def make_due_fits(factory: sessionmaker[Session], forecaster: Forecaster, model_id: int,
                  fence: Callable[[Session], bool], shard: int = 0, shards: int = 1) -> int | None:
    """Make and store the due fits of a model's series in `shard` of `shards`; how many were
    stored, or None once `fence` (called in each storing transaction) says to stop."""
    fitter, fit_steps = forecaster.seasonal_fitter, forecaster.features.fit_steps
    with transaction(factory) as session:
        series = series_of_shard(session, model_id, shard, shards)
    stored = 0
    for start in range(0, len(series), FITS_PER_TRANSACTION):
        chunk = series[start:start + FITS_PER_TRANSACTION]
        made: list[MadeFit] = []
        with transaction(factory) as session:
            keys = [(s.id, b) for s, newest in chunk for b in due_boundaries_s(forecaster, newest)]
            have = stream_rows.fit_versions(session.connection(), model_id, keys)
            by_id = {s.id: s for s, _ in chunk}
            for series_id, boundary_s in keys:
                if (series_id, boundary_s) not in have:
                    fit, read = make_fit(session, by_id[series_id], fitter, fit_steps, boundary_s)
                    made.append(MadeFit(series_id, boundary_s, fit, read))
        with transaction(factory, write=True) as session:
            if not fence(session):
                return None
            for one in made:
                if unchanged(session, one.series_id, one.read):
                    stored += store_fit(session, one.series_id, model_id, one.boundary_s, one.fit)
    return stored


def run_fits_job(settings_data: dict[str, Any], job: ClaimedJob) -> None:
    """Entry point of the child process."""
    child = child_context(settings_data)
    settings, factory = child.settings, child.factory
    log = {"job_id": job.id, "model_id": job.model_id, "attempt": job.attempt}
    started = time.monotonic()
    stored: int | None = 0
    assert job.model_id is not None
    forecaster = Forecaster.load(model_path(settings.model_dir, job.model_id))
    params = job.params or {}

    def fence(session: Session) -> bool:
        # Renewing the lease locks the job's row until the fits' transaction commits, and
        # fails once another attempt owns the job.
        return jobs.renew(session=session, job=job, lease_s=settings.job_lease_s)

    if forecaster.needs_seasonal:
        stored = make_due_fits(factory, forecaster, job.model_id, fence,
                               params.get("shard", 0), params.get("shards", 1))
    if stored is not None:
        with transaction(factory, write=True) as session:
            jobs.finish(session=session, job=job, status=JobStatus.SUCCEEDED)
        JOBS_FINISHED.labels(str(JobStatus.SUCCEEDED)).inc()
    logger.info("seasonal fits made ahead", extra={
        "action": "seasonal_fits", "stored": stored, "fenced": stored is None,
        "elapsed_s": round(time.monotonic() - started, 3), **log})
    child.engine.dispose()
