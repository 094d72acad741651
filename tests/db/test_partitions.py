"""Monthly partitions of `readings` on PostgreSQL: the DEFAULT partition, its split, retention."""

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import jobs
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.forecast_models import create_with_job
from app.db.jobs import JobKind, JobStatus
from app.db.partitions import DEFAULT_PARTITION, list_partitions
from app.db.readings import fetch_readings, insert_readings
from app.db.tables import Job, Series, Stream
from app.db.tenants import create_key
from app.worker.maintenance_task import history_needed_steps, maintain_partitions
from app.worker.schedule import schedule_due
from tests.worker.helpers import fast_worker, work_until

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
HOUR_S = 3600
NOW_S = int(datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp())
WARM_STEPS = 48


def at(text_date: str) -> int:
    return int(datetime.fromisoformat(text_date).replace(tzinfo=UTC).timestamp())


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(settings.database_url)
    yield create_session_factory(engine)
    engine.dispose()


def add_series(factory: sessionmaker[Session], name: str, start: str, end: str) -> int:
    """A tenant's hourly series with a reading every hour from `start` to `end` inclusive."""
    with transaction(factory, write=True) as session:
        tenant, _ = create_key(session=session, tenant_name=f"t-{name}")
        series = Series(tenant_id=tenant.id, name=name, freq="h")
        session.add(series)
        session.flush()
        ts = np.arange(at(start), at(end) + 1, HOUR_S, dtype=np.int64)
        insert_readings(session=session, series_id=series.id, ts_s=ts,
                        values=np.arange(len(ts), dtype=np.float64))
        return series.id


def count(factory: sessionmaker[Session], table: str) -> int:
    with transaction(factory) as session:
        return int(session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def maintain(factory: sessionmaker[Session], retention_days: int | None = None) -> object:
    return maintain_partitions(factory, now_s=NOW_S, retention_days=retention_days,
                               warm_steps=WARM_STEPS)


def test_readings_no_partition_covers_go_to_default_and_maintenance_moves_them(
        factory: sessionmaker[Session]) -> None:
    copied = add_series(factory, "copied", "2031-03-01", "2031-03-05")  # COPY: 97 rows
    with transaction(factory, write=True) as session:  # a few rows: one executemany
        insert_readings(session=session, series_id=copied,
                        ts_s=np.array([at("2031-05-02"), at("2031-05-03")]),
                        values=np.array([1.0, np.nan]))
    assert count(factory, DEFAULT_PARTITION) == 99
    report = maintain(factory)
    assert {"readings_p203103", "readings_p203105"} <= set(report.created)  # type: ignore[attr-defined]
    assert {"readings_p202612", "readings_p202701", "readings_p202702"} <= {
        p.name for p in list_partitions_of(factory)}
    assert report.moved_from_default == 99  # type: ignore[attr-defined]
    assert count(factory, DEFAULT_PARTITION) == 0
    assert count(factory, "readings_p203103") == 97 and count(factory, "readings_p203105") == 2
    with transaction(factory) as session:
        ts, values = fetch_readings(session=session, series_id=copied, start_s=at("2031-05-01"))
    assert ts.tolist() == [at("2031-05-02"), at("2031-05-03")] and np.isnan(values[1])
    assert maintain(factory).created == []  # type: ignore[attr-defined]


def list_partitions_of(factory: sessionmaker[Session]) -> list:  # type: ignore[type-arg]
    with transaction(factory) as session:
        return list_partitions(session.connection())


def test_retention_drops_whole_old_months_and_never_a_needed_reading(
        factory: sessionmaker[Session], settings: Settings) -> None:
    old = add_series(factory, "old", "2024-01-01", "2024-03-31")
    streamed = add_series(factory, "streamed", "2024-01-01", "2024-06-30")
    maintain(factory)
    with transaction(factory, write=True) as session:
        tenant_id = session.get(Series, streamed).tenant_id  # type: ignore[union-attr]
        session.add(Stream(tenant_id=tenant_id, name="meter", series_id=streamed))
        series = session.get(Series, old)
        assert series is not None
        _, job = create_with_job(session=session, tenant_id=series.tenant_id, series=[series],
                                 spec={}, max_attempts=1)
    # A queued training job needs every reading of its series: nothing goes.
    assert maintain(factory, retention_days=30).dropped == []  # type: ignore[attr-defined]
    with transaction(factory, write=True) as session:
        session.execute(update(Job).where(Job.id == job.id).values(status=JobStatus.SUCCEEDED))
    report = maintain(factory, retention_days=30)
    # The stream's warm-up still needs what lies within its window before its newest reading.
    need_from = at("2024-06-30") - history_needed_steps(HOUR_S, WARM_STEPS) * HOUR_S
    assert at("2024-03-01") <= need_from < at("2024-04-01")
    assert report.dropped == ["readings_p202401", "readings_p202402"]  # type: ignore[attr-defined]
    with transaction(factory) as session:
        ts, _ = fetch_readings(session=session, series_id=streamed)
        assert ts[0] == at("2024-03-01") <= need_from
        assert ts[-1] == at("2024-06-30")
        assert fetch_readings(session=session, series_id=old)[0][0] == at("2024-03-01")
    # Without the stream the rest of the old months go, and this month's partitions stay.
    with transaction(factory, write=True) as session:
        session.execute(text("DELETE FROM streams"))
    report = maintain(factory, retention_days=30)
    assert report.dropped == [f"readings_p2024{m:02d}" for m in range(3, 7)]  # type: ignore[attr-defined]
    assert count(factory, "readings") == 0
    assert "readings_p202612" in {p.name for p in list_partitions_of(factory)}


def test_workers_schedule_the_maintenance_once_and_run_it(
        factory: sessionmaker[Session], settings: Settings) -> None:
    add_series(factory, "late", "2031-03-01", "2031-03-02")
    with transaction(factory, write=True) as session:  # two workers polling at the same moment
        first = schedule_due(session=session, settings=settings, now=datetime.now(UTC))
    with transaction(factory, write=True) as session:
        assert schedule_due(session=session, settings=settings, now=datetime.now(UTC)) == []
    assert len(first) == 1
    worker = fast_worker(settings)

    def done() -> bool:
        with transaction(factory) as session:
            return session.scalar(select(Job.status).where(
                Job.kind == JobKind.PARTITIONS)) == JobStatus.SUCCEEDED

    try:
        work_until(worker, done)
    finally:
        worker.shutdown()
    assert count(factory, DEFAULT_PARTITION) == 0
    assert count(factory, "readings_p203103") == 25
    with transaction(factory) as session:
        assert jobs.queue_depth(session=session) == 0
