"""Seasonal fits made ahead by the workers: posts never fit, read the newest fit when the day's
is late and say so, and a fit job killed midway is retried and stores each fit once."""

import signal
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import jobs
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.jobs import JobKind, JobStatus
from app.db.tables import Job, SeasonalFit, utcnow
from app.ml.forecaster import Forecaster
from app.model_files import model_path
from app.worker.fits_task import make_due_fits
from app.worker.schedule import schedule_due
from tests.streams.conftest import hourly_values, streams_on_the_series
from tests.worker.helpers import fast_worker, work_until
from tests.worker.test_liveness import metric

pytestmark = pytest.mark.slow
WARM = 200  # the warm-up ends at 07:00 on the ninth day; its last hour is reading 215
STALE = "Statecast-Seasonal-Fits-Stale"


def post(client: Any, auth: dict[str, str], i: int) -> Any:
    stamps, values = hourly_values()
    response = client.post("/v1/streams/m/readings", headers=auth, json={
        "readings": [{"ts": stamps[i].isoformat(), "value": float(values[i])}]})
    assert response.status_code == 200, response.text
    return response


def fits(settings: Settings) -> list[tuple[int, int, int]]:
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine)) as session:
        rows = session.execute(select(SeasonalFit.series_id, SeasonalFit.model_id,
                                      SeasonalFit.boundary_ts)).all()
    engine.dispose()
    return sorted((int(a), int(b), int(c)) for a, b, c in rows)


def fit_jobs(factory: sessionmaker[Session]) -> list[Job]:
    with transaction(factory) as session:
        return list(session.scalars(select(Job).where(Job.kind == JobKind.SEASONAL_FITS)))


def test_a_post_never_fits_reads_the_newest_fit_when_late_and_says_so(
        client: Any, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Any]) -> None:
    streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"], ("m",), WARM)
    made_by_the_warm_up = fits(settings)
    stale_before = metric(client, "statecast_seasonal_fits_stale_total")
    for i in range(WARM, WARM + 15):  # the rest of the day: its fit is stored
        assert STALE not in post(client, auth, i).headers
    # 23:00: the one-step forecast after it reads the next day's fit, which no worker made.
    assert post(client, auth, WARM + 15).headers[STALE] == "1"
    assert post(client, auth, WARM + 16).headers[STALE] == "1"  # the first reading of the day
    assert fits(settings) == made_by_the_warm_up  # the posts made no fit
    assert metric(client, "statecast_seasonal_fits_stale_total") >= stale_before + 2
    # A worker makes the late day's fit (the next day's is not due before 21:00); posts read
    # it again.
    worker = fast_worker(settings)
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        work_until(worker, lambda: any(j.status == JobStatus.SUCCEEDED
                                       for j in fit_jobs(factory)))
    finally:
        worker.shutdown()
        engine.dispose()
    days = sorted({b for _, _, b in fits(settings)} - {b for _, _, b in made_by_the_warm_up})
    stamps, _ = hourly_values()
    assert days == [int(stamps[WARM + 16].timestamp())]
    assert STALE not in post(client, auth, WARM + 17).headers


def test_a_fit_job_killed_midway_is_retried_and_stores_each_fit_once(
        client: Any, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Any]) -> None:
    # Warmed to 20:00: the next day's fit, whose readings end there (3 hours before its day),
    # is due.
    streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"], ("m",), WARM + 13)
    before = fits(settings)
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    with transaction(factory, write=True) as session:
        schedule_due(session=session, settings=settings, now=utcnow())
        # Only the fit job is under test here (PostgreSQL also queues partition maintenance).
        session.execute(update(Job).where(Job.kind != JobKind.SEASONAL_FITS)
                        .values(status=JobStatus.SUCCEEDED))
    (job,) = fit_jobs(factory)
    worker = fast_worker(settings)
    try:
        worker.tick()  # claims the job and starts its child process
        (running,) = worker.running.values()
        running.process.kill()  # SIGKILL, mid-job or before it began: no code of it runs after
        running.process.join()
        assert running.process.exitcode == -signal.SIGKILL
        first = running.job
        work_until(worker, lambda: fit_jobs(factory)[0].status == JobStatus.SUCCEEDED)
    finally:
        worker.shutdown()
    (done,) = fit_jobs(factory)
    assert done.id == job.id and done.attempts == 2
    made = [f for f in fits(settings) if f not in before]
    stamps, _ = hourly_values()  # the next reading's day was warmed over; the day after is new
    assert [b for _, _, b in made] == [int(stamps[WARM + 16].timestamp())]
    # The first attempt, were it still running, is fenced off: it stores nothing more.
    forecaster = Forecaster.load(model_path(settings.model_dir, first.model_id or 0))
    with transaction(factory, write=True) as session:
        session.execute(SeasonalFit.__table__.delete().where(  # type: ignore[attr-defined]
            SeasonalFit.boundary_ts == made[-1][2]))
    def fence(session: Session) -> bool:
        return jobs.renew(session=session, job=first, lease_s=30)

    assert first.model_id is not None
    assert make_due_fits(factory, forecaster, first.model_id, fence) is None
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(SeasonalFit).where(
            SeasonalFit.boundary_ts == made[-1][2])) == 0
        assert jobs.queue_depth(session=session) == 0
    engine.dispose()


def test_the_fit_cache_is_bounded_by_bytes_and_keeps_the_newest_read() -> None:
    """Fits of a quarter-hourly series take twice a half-hourly one's room: the cache counts
    bytes, evicts the least recently read, and knows what it holds after a replacement."""
    import numpy as np

    from app.ml.seasonal import SeasonalCycles
    from app.streams.seasonal_fits import FIT_ENTRY_OVERHEAD_BYTES, FitCache

    def fit(steps_per_day: int) -> SeasonalCycles:
        return SeasonalCycles((np.zeros(steps_per_day, np.float32),
                               np.zeros(7 * steps_per_day, np.float32)))

    half_hourly = 4 * 8 * 48 + FIT_ENTRY_OVERHEAD_BYTES
    cache = FitCache(max_bytes=3 * half_hourly)
    for series in range(3):
        cache.put((1, series, 0, 0), fit(48))
    assert len(cache) == 3 and cache.nbytes == 3 * half_hourly
    assert cache.get((1, 0, 0, 0)) is not None  # read: now the newest
    cache.put((1, 3, 0, 0), fit(96))  # a quarter-hourly fit takes two half-hourly ones' room
    assert cache.get((1, 1, 0, 0)) is None and cache.get((1, 2, 0, 0)) is None
    assert cache.get((1, 0, 0, 0)) is not None and cache.get((1, 3, 0, 0)) is not None
    cache.put((1, 0, 0, 0), fit(48))  # the same key again: counted once
    assert cache.nbytes == half_hourly + 4 * 8 * 96 + FIT_ENTRY_OVERHEAD_BYTES <= cache.max_bytes
    assert len(FitCache(max_bytes=0)._fits) == 0
