"""A fleet's writes of `app.db.stream_rows`: many rows (copied into a temporary table first on
PostgreSQL) are written exactly as a few rows are, twice in one transaction too; and more rows
than one SQLite statement carries (several statements, the last padded) read and write as one."""

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.stream_rows import (
    PG_ARRAY_MIN_ROWS,
    SQLITE_CHUNK_ROWS,
    StreamUpdate,
    fit_versions,
    insert_new_readings,
    lock_streams,
    save_streams,
    stored_values,
)
from app.db.tables import ForecastModel, SeasonalFit, Series, Stream
from app.db.tenants import create_key
from app.ml.seasonal import SeasonalCycles
from app.ml.stream_state import StreamState

TS = 1_700_000_000
# A few (one statement of VALUES) and many (the temporary table on PostgreSQL).
SIZES = [PG_ARRAY_MIN_ROWS // 2, 3 * PG_ARRAY_MIN_ROWS]
# Two of SQLite's statements, the second of 20 rows padded to 32.
OVER_ONE_CHUNK = SQLITE_CHUNK_ROWS + 20


def a_fleet(factory: sessionmaker[Session], n: int) -> list[tuple[int, int]]:
    """n series with a stream each: (series id, stream id) pairs."""
    with factory() as session, session.begin():
        tenant, _ = create_key(session=session, tenant_name="t")
        series = [Series(tenant_id=tenant.id, name=f"s{i}", freq="h") for i in range(n)]
        session.add_all(series)
        session.flush()
        streams = [Stream(tenant_id=tenant.id, name=f"m{i}", series_id=s.id)
                   for i, s in enumerate(series)]
        session.add_all(streams)
        session.flush()
        return [(s.id, m.id) for s, m in zip(series, streams, strict=True)]


@pytest.mark.parametrize("n", SIZES)
def test_readings_go_in_once_and_say_which_went_in(factory: sessionmaker[Session],
                                                   n: int) -> None:
    fleet = a_fleet(factory, n)
    series = np.array([s for s, _ in fleet])
    values = np.arange(n, dtype=np.float64)
    values[1] = np.nan  # stored as missing
    with factory() as session, session.begin():
        connection = session.connection()
        first = insert_new_readings(connection, series[::2], np.full(len(series[::2]), TS),
                                    values[::2])
        # Again in the same transaction, overlapping: only the new pairs go in.
        second = insert_new_readings(connection, series, np.full(n, TS), values)
    assert first == {(int(s), TS) for s in series[::2]}
    assert second == {(int(s), TS) for s in series[1::2]}
    with factory() as session:
        stored = dict(session.execute(text("SELECT series_id, value FROM readings")).all())
    assert stored[int(series[1])] is None
    assert {s: v for s, v in stored.items() if v is not None} == {
        int(s): float(v) for s, v in zip(series, values, strict=True) if v == v}


def row(stream_id: int, k: int) -> StreamUpdate:
    state = StreamState(series="s", network=(np.full((1, 4), k / 7),), last_value=float(k),
                        last_z=k / 3, last_ns=TS * 10**9, readings=k)
    return StreamUpdate(id=stream_id, model_id=None, state=state, last_ts=TS + k,
                        readings_applied=k, next_forecast={"mean": k + 0.5, "ts": "x"},
                        accuracy=None if k % 2 else {"n": k})


@pytest.mark.parametrize("n", SIZES)
def test_stream_rows_are_written_whole(factory: sessionmaker[Session], n: int) -> None:
    fleet = a_fleet(factory, n)
    with factory() as session, session.begin():
        save_streams(session.connection(), [row(m, 0) for _, m in fleet])
        save_streams(session.connection(), [row(m, k + 1) for k, (_, m) in enumerate(fleet)])
    with factory() as session:
        got: dict[int, Any] = {m.id: m for m in session.query(Stream).all()}
        for k, (_, stream_id) in enumerate(fleet):
            expected = row(stream_id, k + 1)
            stream = got[stream_id]
            assert stream.state == expected.state
            assert (stream.last_ts, stream.readings_applied) == (TS + k + 1, k + 1)
            assert stream.next_forecast == expected.next_forecast
            assert stream.accuracy == expected.accuracy


def test_more_rows_than_one_statement_carries_read_and_write_as_one(
        factory: sessionmaker[Session]) -> None:
    fleet = a_fleet(factory, OVER_ONE_CHUNK)
    series = np.array([s for s, _ in fleet])
    ts = np.full(OVER_ONE_CHUNK, TS)
    values = np.arange(OVER_ONE_CHUNK, dtype=np.float64)
    fit = SeasonalCycles((np.zeros(24, dtype=np.float32),))
    with factory() as session, session.begin():
        tenant_id = session.scalars(select(Series.tenant_id)).first()
        model = ForecastModel(tenant_id=tenant_id, spec={})
        session.add(model)
        session.flush()
        # Every other series has a fit; every third series already has its reading.
        session.add_all([SeasonalFit(series_id=int(s), model_id=model.id, boundary_ts=TS,
                                     cycles=fit, version=int(s) * 7) for s in series[::2]])
        session.flush()
        assert len(insert_new_readings(session.connection(), series[::3], ts[::3],
                                       values[::3])) == len(series[::3])
    names = [f"m{i}" for i in range(OVER_ONE_CHUNK)]
    with factory() as session, session.begin():
        connection = session.connection()
        locked = lock_streams(connection, tenant_id, [*names, "ghost"])
        stored = stored_values(connection, series, ts)
        versions = fit_versions(connection, model.id, [(int(s), TS) for s in series])
        inserted = insert_new_readings(connection, series, ts, values)
    assert sorted(row.name for row in locked) == sorted(names)  # each once, the ghost not
    assert [row.id for row in locked] == sorted(row.id for row in locked)
    assert stored == {(int(s), TS): float(v) for s, v in zip(series[::3], values[::3], strict=True)}
    assert versions == {(int(s), TS): int(s) * 7 for s in series[::2]}
    assert inserted == {(int(s), TS) for i, s in enumerate(series) if i % 3}
    with factory() as session:
        assert session.execute(text("SELECT COUNT(*) FROM readings")).scalar_one() == OVER_ONE_CHUNK
