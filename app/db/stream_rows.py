"""Streams' rows on the hot path: locked, read and written many at a time, in plain SQL.

A one-reading post is a handful of statements, so their cost is the post's cost: building them
with the ORM took most of it. Here each step is one statement for any number of streams, written
for each driver. PostgreSQL takes arrays (`unnest`), so a statement's text never depends on how
many rows it carries and stays prepared; SQLite takes chunks of VALUES rows.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

# Up to this many rows, PostgreSQL statements take VALUES lists rather than arrays (_pg_rows).
PG_ARRAY_MIN_ROWS = 16
# SQLite allows 32,766 bound variables a statement.
SQLITE_MAX_VARIABLES = 32_000

# The model each stream should use now: its pinned one, else the series' default, chosen as
# app.db.forecast_models.default_model_ref does (the last promoted, else the newest that beats
# the seasonal naive, else the newest), so the fast path and the ORM path always agree.
_CURRENT_MODEL = """
    CASE WHEN s.pinned THEN s.model_id ELSE (
        SELECT d.id FROM forecast_models d JOIN model_series ms ON ms.model_id = d.id
        WHERE ms.series_id = s.series_id AND d.status = 'ready'
        ORDER BY CASE WHEN d.promoted_at IS NULL THEN 1 ELSE 0 END, d.promoted_at DESC,
                 d.worse_than_naive, d.id DESC
        LIMIT 1) END"""


def _lock_sql(cast: str, where: str) -> str:
    """The locking read, with JSON columns as text (`cast`) so orjson parses them."""
    return (f"SELECT s.id, s.name, s.series_id, s.model_id, s.pinned, s.state{cast}, s.last_ts, "
            f"s.readings_applied, s.next_forecast{cast}, s.accuracy{cast}, "
            "se.name, se.freq, se.timezone, m.id, m.ready_at "
            "FROM streams s JOIN series se ON se.id = s.series_id "
            f"LEFT JOIN forecast_models m ON m.id = {_CURRENT_MODEL} AND m.status = 'ready' "
            f"WHERE {where}")


_LOCK_PG = _lock_sql("::text", "s.tenant_id = %s AND s.name = ANY(%s) ORDER BY s.id FOR UPDATE OF s")
_LOCK_SQLITE = _lock_sql("", "s.tenant_id = ? AND s.name IN ({names})")


@dataclass
class StreamRow:
    """A locked stream, its series, and the model it should use now (None if none is ready)."""

    id: int
    name: str
    series_id: int
    model_id: int | None
    pinned: bool
    state: dict[str, Any] | None
    last_ts: int | None
    readings_applied: int
    next_forecast: dict[str, Any] | None
    accuracy: dict[str, Any] | None
    series_name: str
    freq: str
    timezone: str
    current_model_id: int | None
    current_ready_at: datetime | None


# A stream as a forecast reads it: with its own model's ready time (NULL when that model is
# not ready or is gone).
_FORECAST_SQL = ("SELECT s.name, s.series_id, s.model_id, s.state{cast}, m.id, m.ready_at "
                 "FROM streams s LEFT JOIN forecast_models m ON m.id = s.model_id AND m.status = 'ready' "
                 "WHERE s.tenant_id = {mark} AND s.name = {mark}")
_FORECAST_PG = _FORECAST_SQL.format(cast="::text", mark="%s")
_FORECAST_SQLITE = _FORECAST_SQL.format(cast="", mark="?")


@dataclass
class ForecastRow:
    """A stream read for a forecast, without locking it."""

    name: str
    series_id: int
    model_id: int | None
    state: dict[str, Any] | None
    ready_model_id: int | None  # model_id if that model is ready, else None
    ready_at: datetime | None


def is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def lock_streams(connection: Connection, tenant_id: int, names: Sequence[str]) -> list[StreamRow]:
    """The tenant's streams among `names`, locked until the transaction ends, in id order.

    PostgreSQL locks the rows in id order, so concurrent posts over overlapping streams wait
    for each other instead of deadlocking; SQLite's write lock (taken by the caller) covers all.
    """
    if is_postgres(connection):
        if len(names) <= PG_ARRAY_MIN_ROWS:
            rows: list[Any] = _run(connection, _LOCK_PG.replace(
                "= ANY(%s)", f"IN ({', '.join(['%s'] * len(names))})"), (tenant_id, *names))
        else:
            rows = _run(connection, _LOCK_PG, (tenant_id, list(names)))
    else:
        rows = []
        for chunk in _chunks(list(names), SQLITE_MAX_VARIABLES - 1):
            sql = _LOCK_SQLITE.format(names=", ".join("?" * len(chunk)))
            rows += _run(connection, sql, (tenant_id, *chunk))
        rows = sorted(rows, key=lambda row: int(row[0]))
    return [StreamRow(
        id=row[0], name=row[1], series_id=row[2], model_id=row[3], pinned=bool(row[4]),
        state=_json(row[5]), last_ts=row[6], readings_applied=row[7],
        next_forecast=_json(row[8]), accuracy=_json(row[9]), series_name=row[10], freq=row[11],
        timezone=row[12], current_model_id=row[13], current_ready_at=_utc(row[14]),
    ) for row in rows]


def read_for_forecast(connection: Connection, tenant_id: int, name: str) -> ForecastRow | None:
    """The tenant's stream `name` with its model's ready time, in one statement; None if none."""
    sql = _FORECAST_PG if is_postgres(connection) else _FORECAST_SQLITE
    rows = _run(connection, sql, (tenant_id, name))
    if not rows:
        return None
    row = rows[0]
    return ForecastRow(name=row[0], series_id=row[1], model_id=row[2], state=_json(row[3]),
                       ready_model_id=row[4], ready_at=_utc(row[5]))


def stored_values(connection: Connection, series_ids: np.ndarray, ts: np.ndarray,
                  ) -> dict[tuple[int, int], float]:
    """The stored value (NaN if stored as missing) of each (series, timestamp) pair that exists."""
    if len(ts) == 0:
        return {}
    if is_postgres(connection):
        keys, params = _pg_rows(("int", "bigint"), series_ids.tolist(), ts.tolist())
        rows: list[Any] = _run(connection,
            f"SELECT r.series_id, r.ts, r.value FROM readings r JOIN {keys} AS k(series_id, ts) "
            "ON r.series_id = k.series_id AND r.ts = k.ts", params)
    else:
        rows = []
        pairs = list(zip(series_ids.tolist(), ts.tolist(), strict=True))
        for chunk in _chunks(pairs, SQLITE_MAX_VARIABLES // 2):
            rows += _run(connection,
                f"WITH k(series_id, ts) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))}) "
                # CROSS JOIN keeps k outermost: one primary-key lookup per pair (a row-value
                # IN list made SQLite scan the whole table).
                "SELECT r.series_id, r.ts, r.value FROM k CROSS JOIN readings r "
                "ON r.series_id = k.series_id AND r.ts = k.ts",
                tuple(v for pair in chunk for v in pair))
    return {(row[0], row[1]): (np.nan if row[2] is None else row[2]) for row in rows}


def insert_new_readings(connection: Connection, series_ids: np.ndarray, ts: np.ndarray,
                        values: np.ndarray) -> set[tuple[int, int]]:
    """Insert readings where none is stored yet; returns the (series, timestamp) pairs inserted.

    A pair stored meanwhile by another writer is skipped, not an error: the caller compares its
    value. Rows go in (series, timestamp) order, so two writers meet in the same order.
    """
    if len(ts) == 0:
        return set()
    order = np.lexsort((ts, series_ids))
    sids, stamps = series_ids[order].tolist(), ts[order].tolist()
    column = [None if v != v else v for v in values[order].tolist()]  # NaN -> NULL
    if is_postgres(connection):
        new, params = _pg_rows(("int", "bigint", "float8"), sids, stamps, column)
        rows: list[Any] = _run(connection,
            f"INSERT INTO readings (series_id, ts, value) SELECT * FROM {new} AS k "
            "ON CONFLICT DO NOTHING RETURNING series_id, ts", params)
    else:
        rows = []
        for chunk in _chunks(list(zip(sids, stamps, column, strict=True)),
                             SQLITE_MAX_VARIABLES // 3):
            rows += _run(connection,
                "INSERT INTO readings (series_id, ts, value) VALUES "
                f"{', '.join(['(?, ?, ?)'] * len(chunk))} "
                "ON CONFLICT DO NOTHING RETURNING series_id, ts",
                tuple(v for row in chunk for v in row))
    return {(row[0], row[1]) for row in rows}


@dataclass
class StreamUpdate:
    id: int
    model_id: int | None
    state: dict[str, Any] | None
    last_ts: int | None
    readings_applied: int
    next_forecast: dict[str, Any] | None
    accuracy: dict[str, Any] | None


def save_streams(connection: Connection, updates: Sequence[StreamUpdate]) -> None:
    """Write the streams' new state, last reading, forecast and accuracy, in one statement."""
    if not updates:
        return
    now = datetime.now(UTC)
    if is_postgres(connection) and len(updates) > PG_ARRAY_MIN_ROWS:
        # Pipelined by psycopg; arrays of JSON text cost twice as much to adapt (quoting).
        _run_many(connection,
                  "UPDATE streams SET model_id = %s, state = %s::json, last_ts = %s, "
                  "readings_applied = %s, next_forecast = %s::json, accuracy = %s::json, "
                  "updated_at = %s WHERE id = %s",
                  [(u.model_id, _dumps(u.state), u.last_ts, u.readings_applied,
                    _dumps(u.next_forecast), _dumps(u.accuracy), now, u.id) for u in updates])
        return
    if is_postgres(connection):
        rows, params = _pg_rows(
            ("int", "int", "text", "bigint", "int", "text", "text"), [u.id for u in updates],
            [u.model_id for u in updates], [_dumps(u.state) for u in updates],
            [u.last_ts for u in updates], [u.readings_applied for u in updates],
            [_dumps(u.next_forecast) for u in updates], [_dumps(u.accuracy) for u in updates])
        _run(connection,
             "UPDATE streams AS s SET model_id = u.model_id, state = u.state::json, "
             "last_ts = u.last_ts, readings_applied = u.readings_applied, "
             "next_forecast = u.next_forecast::json, accuracy = u.accuracy::json, "
             f"updated_at = %s FROM {rows} AS u(id, model_id, state, last_ts, readings_applied, "
             "next_forecast, accuracy) WHERE s.id = u.id", (now, *params))
        return
    # SQLAlchemy's format for DateTime on SQLite: UTC, no zone, microseconds.
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    _run_many(connection,
        "UPDATE streams SET model_id = ?, state = ?, last_ts = ?, readings_applied = ?, "
        "next_forecast = ?, accuracy = ?, updated_at = ? WHERE id = ?",
        [(u.model_id, _dumps(u.state), u.last_ts, u.readings_applied, _dumps(u.next_forecast),
          _dumps(u.accuracy), stamp, u.id) for u in updates])


def fit_versions(connection: Connection, model_id: int, keys: Sequence[tuple[int, int]],
                 ) -> dict[tuple[int, int], int]:
    """The version of each stored seasonal fit among (series, boundary) `keys` of a model."""
    return {(row[0], row[1]): row[2] for row in _fit_rows(connection, model_id, keys, "f.version")}


def stored_values_and_fit_versions(
        connection: Connection, series_ids: np.ndarray, ts: np.ndarray, model_id: int,
        fit_keys: Sequence[tuple[int, int]],
) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], int]]:
    """`stored_values` and `fit_versions` at once: one round trip on PostgreSQL, where a
    one-reading post's statements cost their round trips more than their work."""
    if not is_postgres(connection) or len(ts) == 0 or not fit_keys:
        return (stored_values(connection, series_ids, ts),
                fit_versions(connection, model_id, fit_keys))
    readings, reading_params = _pg_rows(("int", "bigint"), series_ids.tolist(), ts.tolist())
    fits, fit_params = _pg_rows(("int", "bigint"), [k[0] for k in fit_keys],
                                [k[1] for k in fit_keys])
    rows = _run(connection,
                "SELECT 0, r.series_id, r.ts, r.value, NULL::bigint FROM readings r "
                f"JOIN {readings} AS k(series_id, ts) ON r.series_id = k.series_id AND r.ts = k.ts "
                "UNION ALL SELECT 1, f.series_id, f.boundary_ts, NULL::float8, f.version "
                f"FROM seasonal_fits f JOIN {fits} AS k(series_id, boundary_ts) "
                "ON f.series_id = k.series_id AND f.boundary_ts = k.boundary_ts "
                "WHERE f.model_id = %s", (*reading_params, *fit_params, model_id))
    stored = {(row[1], row[2]): (np.nan if row[3] is None else row[3])
              for row in rows if row[0] == 0}
    return stored, {(row[1], row[2]): row[4] for row in rows if row[0] == 1}


def fit_cycles(connection: Connection, model_id: int, keys: Sequence[tuple[int, int]],
               ) -> dict[tuple[int, int], tuple[int, list[list[float]]]]:
    """The version and cycles of each stored fit among (series, boundary) `keys` of a model."""
    cycles = "f.cycles::text" if is_postgres(connection) else "f.cycles"
    return {(row[0], row[1]): (row[2], orjson.loads(row[3]))
            for row in _fit_rows(connection, model_id, keys, f"f.version, {cycles}")}


def _fit_rows(connection: Connection, model_id: int, keys: Sequence[tuple[int, int]],
              columns: str) -> list[Any]:
    """Series, boundary and `columns` of the model's stored fits among (series, boundary) keys."""
    if not keys:
        return []
    if is_postgres(connection):
        wanted, params = _pg_rows(("int", "bigint"), [k[0] for k in keys], [k[1] for k in keys])
        return _run(connection,
                    f"SELECT f.series_id, f.boundary_ts, {columns} FROM seasonal_fits f "
                    f"JOIN {wanted} AS k(series_id, boundary_ts) "
                    "ON f.series_id = k.series_id AND f.boundary_ts = k.boundary_ts "
                    "WHERE f.model_id = %s", (*params, model_id))
    rows = []
    for chunk in _chunks(list(keys), SQLITE_MAX_VARIABLES // 2 - 1):
        rows += _run(connection,
                     f"WITH k(series_id, boundary_ts) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))}) "
                     f"SELECT f.series_id, f.boundary_ts, {columns} FROM k CROSS JOIN seasonal_fits f "
                     "ON f.series_id = k.series_id AND f.model_id = ? AND f.boundary_ts = k.boundary_ts",
                     (*(v for pair in chunk for v in pair), model_id))
    return rows


def _pg_rows(types: Sequence[str], *columns: list[Any]) -> tuple[str, tuple[Any, ...]]:
    """Rows as a PostgreSQL table expression and its parameters, column by column.

    Many rows travel as one array per column (`unnest`), so the statement's text stays the same
    whatever their number; a few travel as a VALUES list, because psycopg's array adaptation
    costs more (~0.15 ms a statement) than a one-reading post's whole query.
    """
    if len(columns[0]) > PG_ARRAY_MIN_ROWS:
        return (f"unnest({', '.join(f'%s::{t}[]' for t in types)})", columns)
    row = f"({', '.join(f'%s::{t}' for t in types)})"
    return (f"(VALUES {', '.join([row] * len(columns[0]))})",
            tuple(v for values in zip(*columns, strict=True) for v in values))


def _run(connection: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """Execute on the driver's own connection, in the caller's transaction; the rows, if any.

    SQLAlchemy's statement handling cost more than the statement itself here. Driver errors are
    raised as SQLAlchemy's, so the API's handlers (503 for an outage or a lock timeout) apply.
    """
    with _translated(connection, sql, params):
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()


def _run_many(connection: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    with _translated(connection, sql, rows):
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()


@contextmanager
def _translated(connection: Connection, sql: str, params: Any) -> Iterator[None]:
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dbapi.Error,
                                  dialect=connection.dialect) from exc


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _json(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _utc(value: datetime | str | None) -> datetime | None:
    """A timestamp column as the ORM reads it: aware UTC (SQLite returns its text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
