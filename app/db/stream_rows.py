"""Streams' rows on the hot path: locked, read and written many at a time, in plain SQL.

A one-reading post is a handful of statements, so their cost is the post's cost: building them
with the ORM took most of it. Here each operation is one statement for any number of streams,
built by one function from the dialect's few differences (`_Dialect`): its placeholder, how it
takes a table of rows, and how it reads JSON as text. PostgreSQL takes arrays (`unnest`), so a
statement's text never depends on how many rows it carries and stays prepared; SQLite takes
VALUES rows, in runs of a few fixed sizes (`_Dialect.chunks`), so that the statements each
connection keeps prepared stay few and small. A fleet's writes on PostgreSQL (its readings, its
stream rows) are copied into a temporary table first, then applied by one statement (`_copied`).
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, Dialect, literal_column
from sqlalchemy.exc import DBAPIError

from app.db import readings_versions
from app.db.forecast_models import default_model_id
from app.db.series import SeriesTraits, stored_calendar
from app.db.tables import ModelStatus, UTCDateTime
from app.ml.seasonal import SeasonalCycles, decode_cycles
from app.ml.stream_state import State, decode, encode

# Up to this many rows, PostgreSQL statements take VALUES lists rather than arrays (_Dialect.rows).
PG_ARRAY_MIN_ROWS = 16
# Rows a statement carries at most on SQLite. Each pooled connection keeps its last 128
# prepared statements (sqlite3's cache), and a prepared statement's size follows its rows (~200 B
# a row: ~2.4 MiB for a 10,000-stream post's key lookup); with a statement sized to each post,
# a fleet's bulk posts left several such statements in every pooled connection, and the
# server's memory grew with the post's size (docs/benchmarks.md, "Statements of fixed shapes").
SQLITE_CHUNK_ROWS = 1024
# Up to this many rows a SQLite statement carries exactly its rows (a one-reading post's few);
# more are padded up to the next power of two (at most SQLITE_CHUNK_ROWS), so a connection caches
# a few shapes of bounded size whatever the posts' sizes.
SQLITE_EXACT_ROWS = 16
# A ready model's status as an SQL literal, for the joins that keep only ready models.
_READY = f"'{ModelStatus.READY.value}'"


@dataclass(frozen=True)
class _Dialect:
    """What the statements here need to know of a database: everything else is shared SQL."""

    postgres: bool
    mark: str  # the driver's placeholder
    json_text: str  # appended to a JSON column to read it as text
    current_model: str  # the model a stream `s` should use now (see `_current_model`)
    stamp: Callable[[datetime], Any]  # a UTC timestamp as the ORM binds it
    read_stamp: Callable[[Any], datetime | None]  # and as the ORM reads it back

    def rows(self, types: Sequence[str], *columns: list[Any]) -> tuple[str, tuple[Any, ...]]:
        """Rows as a query (the body of a `WITH` or an `INSERT`) and its parameters, given
        column by column.

        On PostgreSQL many rows travel as one array per column (`unnest`), so the statement's
        text stays the same whatever their number; a few travel as a VALUES list, because
        psycopg's array adaptation costs more (~0.15 ms a statement) than a one-reading post's
        whole query. SQLite takes VALUES rows (`types` are PostgreSQL's casts).
        """
        if self.postgres and len(columns[0]) > PG_ARRAY_MIN_ROWS:
            return (f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in types)})", columns)
        casts = [f"::{t}" if self.postgres else "" for t in types]
        row = f"({', '.join(f'{self.mark}{cast}' for cast in casts)})"
        return (f"VALUES {', '.join([row] * len(columns[0]))}",
                tuple(v for values in zip(*columns, strict=True) for v in values))

    def member_of(self, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """`IN (...)` of the values (PostgreSQL: `= ANY` of an array, for many)."""
        if self.postgres and len(values) > PG_ARRAY_MIN_ROWS:
            return "= ANY(%s)", (list(values),)
        return f"IN ({', '.join([self.mark] * len(values))})", tuple(values)

    def chunks(self, items: Sequence[Any]) -> Iterator[list[Any]]:
        """`items` in the runs that one statement each carries: all at once on PostgreSQL
        (arrays, or a temporary table, keep its statements' text fixed), and on SQLite runs of
        at most SQLITE_CHUNK_ROWS, a short one padded to a fixed size by repeating its last
        item. Every statement here reads its rows as a set (an IN list, keys looked up into a
        dict, an insert that skips a row stored already), so a repeated row changes nothing."""
        if self.postgres:
            if items:
                yield list(items)
            return
        for start in range(0, len(items), SQLITE_CHUNK_ROWS):
            chunk = list(items[start:start + SQLITE_CHUNK_ROWS])
            size = len(chunk) if len(chunk) <= SQLITE_EXACT_ROWS else min(
                SQLITE_CHUNK_ROWS, 1 << (len(chunk) - 1).bit_length())
            yield chunk + chunk[-1:] * (size - len(chunk))


def _dialect(connection: Connection) -> _Dialect:
    return _dialect_of(connection.dialect)


@cache
def _dialect_of(dialect: Dialect) -> _Dialect:
    postgres = dialect.name == "postgresql"
    column_type = UTCDateTime().dialect_impl(dialect)
    bind = column_type.bind_processor(dialect)
    result = column_type.result_processor(dialect, None)
    return _Dialect(
        postgres=postgres, mark="%s" if postgres else "?", json_text="::text" if postgres else "",
        current_model=_current_model(dialect),
        stamp=bind if bind is not None else (lambda value: value),
        read_stamp=result if result is not None else (lambda value: value))


def _current_model(dialect: Dialect) -> str:
    """The model each stream `s` should use now: its pinned one, else its series' default, chosen
    by the very query the ORM path runs (`forecast_models.default_model_id`)."""
    default = default_model_id(literal_column("s.series_id")).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"CASE WHEN s.pinned THEN s.model_id ELSE {default} END"


@dataclass
class StreamRow:
    """A locked stream, its series, and the model it should use now (None if none is ready)."""

    id: int
    name: str
    series_id: int
    model_id: int | None
    pinned: bool
    state: State | None
    last_ts: int | None
    readings_applied: int
    next_forecast: dict[str, Any] | None
    accuracy: dict[str, Any] | None
    series_name: str
    freq: str
    timezone: str
    current_model_id: int | None
    current_ready_at: datetime | None
    holidays: str | None
    special_days: str  # the series' special days as stored, JSON text (parsed when read)

    @property
    def series(self) -> SeriesTraits:
        """The stream's series as a profile model reads it, from this row: a covariate post
        reads its series with its stream's lock, not again (its calendar parsed once a process)."""
        return SeriesTraits(id=self.series_id, name=self.series_name, freq=self.freq,
                            calendar=stored_calendar(self.holidays, self.special_days))


@dataclass
class ForecastRow:
    """A stream read for a forecast, without locking it."""

    name: str
    series_id: int
    model_id: int | None
    state: State | None
    ready_model_id: int | None  # model_id if that model is ready, else None
    ready_at: datetime | None


def lock_streams(connection: Connection, tenant_id: int, names: Sequence[str]) -> list[StreamRow]:
    """The tenant's streams among `names`, locked until the transaction ends, in id order.

    PostgreSQL locks the rows in id order, so concurrent posts over overlapping streams wait
    for each other instead of deadlocking; SQLite's write lock (taken by the caller) covers all.
    """
    d = _dialect(connection)
    rows: list[Any] = []
    for chunk in d.chunks(names):
        among, params = d.member_of(chunk)
        rows += _run(connection,
                     f"SELECT s.id, s.name, s.series_id, s.model_id, s.pinned, s.state, "
                     f"s.last_ts, s.readings_applied, s.next_forecast{d.json_text}, "
                     f"s.accuracy{d.json_text}, se.name, se.freq, se.timezone, m.id, m.ready_at, "
                     f"se.holidays, se.special_days{d.json_text} "
                     "FROM streams s JOIN series se ON se.id = s.series_id "
                     f"LEFT JOIN forecast_models m ON m.id = {d.current_model} AND m.status = {_READY} "
                     f"WHERE s.tenant_id = {d.mark} AND s.name {among}"
                     + (" ORDER BY s.id FOR UPDATE OF s" if d.postgres else ""),
                     (tenant_id, *params))
    return [StreamRow(
        id=row[0], name=row[1], series_id=row[2], model_id=row[3], pinned=bool(row[4]),
        state=_state(row[5]), last_ts=row[6], readings_applied=row[7],
        next_forecast=_json(row[8]), accuracy=_json(row[9]), series_name=row[10], freq=row[11],
        timezone=row[12], current_model_id=row[13], current_ready_at=d.read_stamp(row[14]),
        holidays=row[15], special_days=row[16],
    ) for row in sorted(rows, key=lambda row: int(row[0]))]


def read_for_forecast(connection: Connection, tenant_id: int, name: str) -> ForecastRow | None:
    """The tenant's stream `name` with its model's ready time (NULL when that model is not
    ready or is gone), in one statement; None if there is no such stream."""
    d = _dialect(connection)
    rows = _run(connection,
                f"SELECT s.name, s.series_id, s.model_id, s.state, m.id, m.ready_at "
                f"FROM streams s LEFT JOIN forecast_models m ON m.id = s.model_id AND m.status = {_READY} "
                f"WHERE s.tenant_id = {d.mark} AND s.name = {d.mark}", (tenant_id, name))
    if not rows:
        return None
    row = rows[0]
    return ForecastRow(name=row[0], series_id=row[1], model_id=row[2], state=_state(row[3]),
                       ready_model_id=row[4], ready_at=d.read_stamp(row[5]))


def stored_values(connection: Connection, series_ids: np.ndarray, ts: np.ndarray,
                  ) -> dict[tuple[int, int], float]:
    """The stored value (NaN if stored as missing) of each (series, timestamp) pair that exists."""
    d = _dialect(connection)
    rows: list[Any] = []
    pairs = list(zip(series_ids.tolist(), ts.tolist(), strict=True))
    for chunk in d.chunks(pairs):
        wanted, params = d.rows(("int", "bigint"), *_columns(chunk, 2))
        rows += _run(connection, f"WITH k(series_id, ts) AS ({wanted}) {_readings_at('k')}", params)
    return {(row[0], row[1]): (np.nan if row[2] is None else row[2]) for row in rows}


def _readings_at(keys: str, head: str = "", tail: str = "") -> str:
    """The stored readings at the (series_id, ts) rows of `keys`, between `head` and `tail`
    columns. CROSS JOIN keeps the keys outermost on SQLite: one primary-key lookup per pair (a
    row-value IN list made it scan the whole table)."""
    return (f"SELECT {head}r.series_id, r.ts, r.value{tail} FROM {keys} CROSS JOIN readings r "
            f"WHERE r.series_id = {keys}.series_id AND r.ts = {keys}.ts")


def _fits_at(d: _Dialect, keys: str, columns: str, head: str = "") -> str:
    """The model's (a parameter after the keys') stored fits at the (series_id, boundary_ts)
    rows of `keys`: series, boundary and `columns`."""
    return (f"SELECT {head}f.series_id, f.boundary_ts, {columns} FROM {keys} "
            f"CROSS JOIN seasonal_fits f WHERE f.series_id = {keys}.series_id "
            f"AND f.boundary_ts = {keys}.boundary_ts AND f.model_id = {d.mark}")


def insert_new_readings(connection: Connection, series_ids: np.ndarray, ts: np.ndarray,
                        values: np.ndarray) -> set[tuple[int, int]]:
    """Insert readings where none is stored yet; returns the (series, timestamp) pairs inserted.

    A pair stored meanwhile by another writer is skipped, not an error: the caller compares its
    value. Rows go in (series, timestamp) order, so two writers meet in the same order. The series
    read as covariates get new readings versions (`app.db.readings_versions`).
    """
    d = _dialect(connection)
    order = np.lexsort((ts, series_ids))
    column = [None if v != v else v for v in values[order].tolist()]  # NaN -> NULL
    rows: list[Any] = []
    new_rows = list(zip(series_ids[order].tolist(), ts[order].tolist(), column, strict=True))
    if d.postgres and len(new_rows) > PG_ARRAY_MIN_ROWS:
        insert = (f"INSERT INTO readings (series_id, ts, value) SELECT * FROM "
                  f"{_NEW_READINGS.name} ORDER BY series_id, ts "
                  "ON CONFLICT DO NOTHING RETURNING series_id, ts")
        rows = _copied(connection, _NEW_READINGS, new_rows,
                       f"WITH new AS ({insert}), noted AS "
                       f"({readings_versions.noted_sql('SELECT DISTINCT series_id FROM new', '%s')}) "
                       "SELECT series_id, ts FROM new", (readings_versions.new_version(),))
        return {(row[0], row[1]) for row in rows}
    for chunk in d.chunks(new_rows):
        new, params = d.rows(("int", "bigint", "float8"), *_columns(chunk, 3))
        insert = (f"INSERT INTO readings (series_id, ts, value) {new} "
                  "ON CONFLICT DO NOTHING RETURNING series_id, ts")
        if d.postgres:  # the covariates among the series get new versions in the same trip
            rows += _run(connection, f"WITH new AS ({insert}), noted AS "
                         f"({readings_versions.noted_sql('SELECT series_id FROM new', d.mark)}) "
                         "SELECT series_id, ts FROM new",
                         (*params, readings_versions.new_version()))
        else:
            rows += _run(connection, insert, params)
    if not d.postgres:
        for written in d.chunks(sorted({row[0] for row in rows})):
            readings_versions.note_written(connection, written)
    return {(row[0], row[1]) for row in rows}


@dataclass
class StreamUpdate:
    id: int
    model_id: int | None
    state: State | None
    last_ts: int | None
    readings_applied: int
    next_forecast: dict[str, Any] | None
    accuracy: dict[str, Any] | None


def save_streams(connection: Connection, updates: Sequence[StreamUpdate]) -> None:
    """Write the streams' new state, last reading, forecast and accuracy.

    On PostgreSQL one `UPDATE ... FROM` a table of rows, in one round trip: a few rows' VALUES
    list, or many rows copied into a temporary table first (`_copied`). SQLite, in process,
    has no round trips to save: one prepared statement per row.
    """
    if not updates:
        return
    d = _dialect(connection)
    now = d.stamp(datetime.now(UTC))
    rows = [(u.id, u.model_id, _encoded(u.state), u.last_ts, u.readings_applied,
             _dumps(u.next_forecast), _dumps(u.accuracy)) for u in updates]
    if d.postgres:
        def update(table: str) -> str:
            return ("UPDATE streams AS s SET model_id = u.model_id, state = u.state, "
                    "last_ts = u.last_ts, readings_applied = u.readings_applied, "
                    "next_forecast = u.next_forecast::json, accuracy = u.accuracy::json, "
                    f"updated_at = %s FROM {table} AS u(id, model_id, state, last_ts, "
                    "readings_applied, next_forecast, accuracy) WHERE s.id = u.id")

        if len(rows) > PG_ARRAY_MIN_ROWS:
            _copied(connection, _NEW_STATES, rows, update(_NEW_STATES.name), (now,))
        else:
            table, params = d.rows(_NEW_STATES.types, *_columns(rows, 7))
            _run(connection, update(f"({table})"), (now, *params))
        return
    _run_many(connection,
              "UPDATE streams SET model_id = ?, state = ?, last_ts = ?, readings_applied = ?, "
              "next_forecast = ?, accuracy = ?, updated_at = ? WHERE id = ?",
              [(*row[1:], now, row[0]) for row in rows])


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
    d = _dialect(connection)
    if not d.postgres or len(ts) == 0 or not fit_keys:
        return (stored_values(connection, series_ids, ts),
                fit_versions(connection, model_id, fit_keys))
    readings, reading_params = d.rows(("int", "bigint"), series_ids.tolist(), ts.tolist())
    fits, fit_params = d.rows(("int", "bigint"), *_columns(fit_keys, 2))
    rows = _run(connection,
                f"WITH k(series_id, ts) AS ({readings}), kf(series_id, boundary_ts) AS ({fits}) "
                f"{_readings_at('k', '0, ', ', NULL::bigint')} "
                f"UNION ALL {_fits_at(d, 'kf', 'NULL::float8, f.version', '1, ')}",
                (*reading_params, *fit_params, model_id))
    stored = {(row[1], row[2]): (np.nan if row[3] is None else row[3])
              for row in rows if row[0] == 0}
    return stored, {(row[1], row[2]): row[4] for row in rows if row[0] == 1}


def fit_cycles(connection: Connection, model_id: int, keys: Sequence[tuple[int, int]],
               ) -> dict[tuple[int, int], tuple[int, SeasonalCycles]]:
    """The version and cycles of each stored fit among (series, boundary) `keys` of a model."""
    return {(row[0], row[1]): (row[2], decode_cycles(row[3]))
            for row in _fit_rows(connection, model_id, keys, "f.version, f.cycles")}


def newest_fits_before(connection: Connection, model_id: int, keys: Sequence[tuple[int, int]],
                       ) -> dict[tuple[int, int], tuple[int, int]]:
    """For (series, boundary) `keys`, the boundary and version of the series' newest fit of the
    model before that boundary, where it has one (what a post reads while a day's fit is late)."""
    d = _dialect(connection)
    rows: list[Any] = []
    for chunk in d.chunks(keys):
        wanted, params = d.rows(("int", "bigint"), *_columns(chunk, 2))
        rows += _run(connection,
                     f"WITH k(series_id, boundary_ts) AS ({wanted}) "
                     "SELECT k.series_id, k.boundary_ts, f.boundary_ts, f.version FROM k "
                     "CROSS JOIN seasonal_fits f WHERE f.series_id = k.series_id "
                     f"AND f.model_id = {d.mark} AND f.boundary_ts = (SELECT MAX(o.boundary_ts) "
                     "FROM seasonal_fits o WHERE o.series_id = k.series_id "
                     f"AND o.model_id = {d.mark} AND o.boundary_ts < k.boundary_ts)",
                     (*params, model_id, model_id))
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}


def _fit_rows(connection: Connection, model_id: int, keys: Sequence[tuple[int, int]],
              columns: str) -> list[Any]:
    """Series, boundary and `columns` of the model's stored fits among (series, boundary) keys."""
    d = _dialect(connection)
    rows: list[Any] = []
    for chunk in d.chunks(keys):
        wanted, params = d.rows(("int", "bigint"), *_columns(chunk, 2))
        rows += _run(connection, f"WITH k(series_id, boundary_ts) AS ({wanted}) "
                                 f"{_fits_at(d, 'k', columns)}", (*params, model_id))
    return rows


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as `width` lists, column by column (for `_Dialect.rows`)."""
    return [[row[i] for row in rows] for i in range(width)]


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


@dataclass(frozen=True)
class _Scratch:
    """A temporary table that many rows are copied into, for one statement to read."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]  # PostgreSQL's, also the binary COPY's

    @property
    def create(self) -> str:
        columns = ", ".join(f"{c} {t}" for c, t in zip(self.columns, self.types, strict=True))
        # Created once per connection (a temporary table per transaction would churn the
        # catalogs); its rows are gone at the end of each transaction.
        return (f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.name} ({columns}) "
                f"ON COMMIT DELETE ROWS; DELETE FROM {self.name}")


_NEW_READINGS = _Scratch("new_readings", ("series_id", "ts", "value"),
                         ("int4", "int8", "float8"))
_NEW_STATES = _Scratch("new_states", ("id", "model_id", "state", "last_ts", "readings_applied",
                                      "next_forecast", "accuracy"),
                       ("int4", "int4", "bytea", "int8", "int4", "text", "text"))


def _copied(connection: Connection, scratch: _Scratch, rows: Sequence[Sequence[Any]],
            sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """`sql` run once `rows` are copied into the temporary table `scratch` (PostgreSQL).

    For a fleet's post, binary COPY and one statement beat the alternatives measured by
    `bench/bulk_sql.py` (docs/benchmarks.md, "A lean post"): arrays bound to one statement,
    a VALUES list, and pipelined one-row statements.
    """
    with _translated(connection, sql, params):
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(scratch.create)
            with cursor.copy(f"COPY {scratch.name} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(scratch.types))
                for row in rows:
                    copy.write_row(row)
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


def _json(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def _state(stored: bytes | str | None) -> State | None:
    return None if stored is None else decode(stored)


def _encoded(state: State | None) -> bytes | None:
    return None if state is None else encode(state)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()
