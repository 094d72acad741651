"""Bulk storage and retrieval of readings as numpy arrays.

One ORM object per row would cap ingest at a few thousand rows a second; here rows travel as
arrays: PostgreSQL loads them with a binary COPY, SQLite with one prepared `executemany`.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from app.db.reading_counts import count_inserted
from app.db.readings_versions import note_written
from app.db.tables import Reading
from app.errors import Conflict, field_error
from app.ingest import MAX_REPORTED_ROWS, ReadingsBatch
from app.timegrid import to_iso

OnConflict = Literal["error", "replace"]
# COPY costs extra round trips to start and finish; a few rows (a stream's post) insert faster.
COPY_MIN_ROWS = 64
# First key of the series' advisory locks (the second is the series id): "sc" in ASCII, so they
# cannot be confused with another application's locks on the same database.
SERIES_LOCK_NAMESPACE = 0x7363


@dataclass(frozen=True)
class StoreResult:
    received: int
    inserted: int
    updated: int
    unchanged: int
    first_ts: int
    last_ts: int


def store_readings(*, session: Session, series_id: int, batch: ReadingsBatch,
                   on_conflict: OnConflict = "error",
                   stored: tuple[np.ndarray, np.ndarray] | None = None) -> StoreResult:
    """Insert new readings, skip identical ones; a changed value is a Conflict unless replaced.

    All-or-nothing follows from the caller's transaction. `stored` may pass readings the caller
    already fetched over at least the batch's span (used on SQLite, whose write lock the caller
    holds from its first read).
    """
    ts, values = batch.ts_s, batch.values
    if lock_series(session=session, series_id=series_id):
        stored = None  # read before the lock: another writer may have stored since
    old_ts, old_values = stored if stored is not None else fetch_readings(
        session=session, series_id=series_id, start_s=int(ts[0]), end_s=int(ts[-1]))
    position = np.searchsorted(old_ts, ts)
    exists = position < len(old_ts)
    exists[exists] = old_ts[position[exists]] == ts[exists]
    previous = np.full(len(ts), np.nan)
    previous[exists] = old_values[position[exists]]
    same = exists & ((previous == values) | (np.isnan(previous) & np.isnan(values)))
    changed = exists & ~same
    if changed.any() and on_conflict != "replace":
        rows = np.flatnonzero(changed)[:MAX_REPORTED_ROWS]
        raise Conflict(
            f"{int(changed.sum())} reading(s) already stored with another value; "
            "send on_conflict=replace to overwrite them",
            errors=[field_error("value", _num(values[i]), f"stored value is {_num(previous[i])}",
                                ts=to_iso(int(ts[i]))) for i in rows],
        )
    new = ~exists
    insert_readings(session=session, series_id=series_id, ts_s=ts[new], values=values[new])
    if changed.any():
        table = Reading.__table__
        assert isinstance(table, Table)
        session.connection().execute(
            update(table).where(table.c.series_id == bindparam("sid"), table.c.ts == bindparam("t"))
            .values(value=bindparam("v")),
            [{"sid": series_id, "t": int(t), "v": _num(v)}
             for t, v in zip(ts[changed], values[changed], strict=True)],
        )
    if new.any() or changed.any():
        note_written(session.connection(), [series_id])
    return StoreResult(received=len(ts), inserted=int(new.sum()), updated=int(changed.sum()),
                       unchanged=int(same.sum()), first_ts=int(ts[0]), last_ts=int(ts[-1]))


def lock_series(*, session: Session, series_id: int) -> bool:
    """Serialise writers of one series' readings until the transaction ends; True if locked.

    Two streams of one series, or an upload and a stream post, would otherwise both find a
    timestamp free and both insert it, and the second would fail on the primary key. On
    PostgreSQL this takes a transaction-scoped advisory lock (waiting at most the lock timeout);
    on SQLite the caller's write lock already serialises every writer, so it does nothing.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return False
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, %s)",
                               (SERIES_LOCK_NAMESPACE, series_id))
    return True


# PostgreSQL's binary COPY format, built with numpy rather than formatted as text row by row
# (text formatting took longer than the COPY itself). Each row: a field count, then per field a
# byte length and the big-endian value; a NULL is length -1 with no bytes. The types must match
# the columns exactly: series_id integer (int4), ts bigint (int8), value double precision.
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
PGCOPY_TRAILER = b"\xff\xff"
_ROW_START = [("fields", ">i2"), ("series_id_len", ">i4"), ("series_id", ">i4"),
              ("ts_len", ">i4"), ("ts", ">i8"), ("value_len", ">i4")]
PGCOPY_ROW = np.dtype([*_ROW_START, ("value", ">f8")])
PGCOPY_NULL_ROW = np.dtype(_ROW_START)


def copy_binary(series_id: int, ts_s: np.ndarray, values: np.ndarray) -> bytes:
    """The readings as one binary COPY stream: rows with a value, then rows without one."""
    missing = np.isnan(values)
    blocks = []
    for dtype, mask in ((PGCOPY_ROW, ~missing), (PGCOPY_NULL_ROW, missing)):
        rows = np.empty(int(mask.sum()), dtype)
        rows["fields"], rows["series_id_len"], rows["series_id"] = 3, 4, series_id
        rows["ts_len"], rows["ts"] = 8, ts_s[mask]
        if dtype is PGCOPY_ROW:
            rows["value_len"], rows["value"] = 8, values[mask]
        else:
            rows["value_len"] = -1
        blocks.append(rows.tobytes())
    return b"".join([PGCOPY_HEADER, *blocks, PGCOPY_TRAILER])


def insert_readings(*, session: Session, series_id: int, ts_s: np.ndarray,
                    values: np.ndarray) -> None:
    """Insert readings known to be new, as fast as the database allows (and count them
    against the tenant's quota, app/db/reading_counts.py)."""
    if len(ts_s) == 0:
        return
    count_inserted(session, len(ts_s))
    connection = session.connection()
    if connection.dialect.name == "postgresql" and len(ts_s) >= COPY_MIN_ROWS:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
            "COPY readings (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(copy_binary(series_id, ts_s, values))
        return
    column = [None if v != v else v for v in values.tolist()]  # NaN -> NULL
    marker = "%s" if connection.dialect.name == "postgresql" else "?"
    connection.exec_driver_sql(
        f"INSERT INTO readings (series_id, ts, value) VALUES ({marker}, {marker}, {marker})",
        list(zip([series_id] * len(ts_s), ts_s.tolist(), column, strict=True)),
    )


def fetch_readings(*, session: Session, series_id: int, start_s: int | None = None,
                   end_s: int | None = None, limit: int | None = None,
                   newest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (int64 Unix seconds) and values (float64, NaN if missing), oldest first.

    With `newest`, the limit keeps the latest readings instead of the earliest.
    """
    query = select(Reading.ts, Reading.value).where(Reading.series_id == series_id)
    if start_s is not None:
        query = query.where(Reading.ts >= start_s)
    if end_s is not None:
        query = query.where(Reading.ts <= end_s)
    query = query.order_by(Reading.ts.desc() if newest else Reading.ts)
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    ts = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    values = np.fromiter((np.nan if r[1] is None else r[1] for r in rows), np.float64, len(rows))
    if newest:
        ts, values = ts[::-1].copy(), values[::-1].copy()
    return ts, values


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
