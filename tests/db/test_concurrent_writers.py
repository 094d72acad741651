"""Two writers of one series' readings at once (PostgreSQL: row-level concurrency)."""

import threading

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db.readings import StoreResult, fetch_readings, store_readings
from app.db.tables import Series
from app.db.tenants import create_key
from app.errors import Conflict
from app.ingest import ReadingsBatch

TS = 1_700_000_000


def a_series(factory: sessionmaker[Session]) -> int:
    with factory() as session, session.begin():
        tenant, _ = create_key(session=session, tenant_name="t")
        series = Series(tenant_id=tenant.id, name="s", freq="h")
        session.add(series)
        session.flush()
        return series.id


def batch(value: float) -> ReadingsBatch:
    return ReadingsBatch(ts_s=np.array([TS], np.int64), values=np.array([value]))


def race(factory: sessionmaker[Session], first: float, second: float) -> object:
    """Both writers read the series (empty) first, as a stream post does, then store; the
    second stores while the first's transaction is still open, then the first commits."""
    sid = a_series(factory)
    empty = (np.array([], np.int64), np.array([]))
    outcome: list[object] = []
    with factory() as one:
        one.begin()
        store_readings(session=one, series_id=sid, batch=batch(first), stored=empty)

        def other_writer() -> None:
            with factory() as two, two.begin():
                try:
                    outcome.append(store_readings(session=two, series_id=sid,
                                                  batch=batch(second), stored=empty))
                except Exception as exc:
                    outcome.append(exc)

        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join(0.5)  # it waits for the first writer's lock
        one.commit()
    thread.join(30)
    with factory() as session:
        ts, values = fetch_readings(session=session, series_id=sid)
    assert ts.tolist() == [TS] and values.tolist() == [first]
    return outcome[0]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_same_reading_from_two_writers_is_stored_once(factory: sessionmaker[Session]) -> None:
    result = race(factory, 5.0, 5.0)
    assert isinstance(result, StoreResult), result
    assert (result.inserted, result.unchanged) == (0, 1)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_different_value_from_a_second_writer_is_a_conflict(
        factory: sessionmaker[Session]) -> None:
    result = race(factory, 5.0, 6.0)
    assert isinstance(result, Conflict), result
    assert result.errors[0]["value"] == 6.0
