"""How a fleet's bulk post writes to PostgreSQL, side by side in one run: the readings' insert
and the stream rows' update, each written three ways, on one database.

Readings (one per stream, `INSERT ... ON CONFLICT DO NOTHING RETURNING`, as
`app.db.stream_rows.insert_new_readings` needs): (a) one statement over `unnest` of three
arrays, (b) `COPY` (binary) into a temporary table, then one `INSERT ... SELECT`, (c) psycopg's
pipelined `executemany` of a one-row statement. Stream rows (state, last reading, counters,
forecast and accuracy): (a) pipelined `executemany` of a one-row UPDATE, (b) `UPDATE ... FROM
(VALUES ...)`, one statement per 8,000 rows (PostgreSQL's 65,535 parameters), (c) `UPDATE ...
FROM unnest(...)` of arrays. Each trial runs in a transaction that is rolled back, so every
trial meets the same tables; the methods alternate round by round, and the median is printed.

    python -m bench.bulk_sql --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg

from app.db.migrations import upgrade
from bench.harness import fresh_postgres_database

STREAMS = 10_000
ROUNDS = 5
STATE_BYTES = 150  # a GRU(16) state with its scaling, as stream_state.encode writes it
FORECAST = {"ts": "2024-01-29T00:30:00Z", "mean": 812.5, "lower_80": 700.1, "upper_80": 900.2,
            "lower_95": 650.3, "upper_95": 950.4}
ACCURACY = {"n": 40, "model": {"abs": 1234.5, "sq": 98765.4, "ape": 1.25},
            "naive": {"abs": 2345.6, "sq": 187654.3, "ape": 2.5},
            "seasonal": {"abs": 1999.9, "sq": 154321.0, "ape": 2.1}}
FIRST_TS = 1_706_486_400  # 2024-01-29 00:00 UTC, after the seeded readings
PG_MAX_PARAMETERS = 65_535

Rows = list[tuple[Any, ...]]


def setup(connection: psycopg.Connection) -> list[int]:
    """One tenant, STREAMS series with one reading each and a stream each; the stream ids."""
    connection.execute("INSERT INTO tenants (name, created_at) VALUES ('bench', now())")
    connection.execute(
        "INSERT INTO series (tenant_id, name, freq, timezone, special_days, created_at) "
        "SELECT 1, 'meter-' || i, '30min', 'UTC', '[]', now() FROM generate_series(1, %s) i",
        (STREAMS,))
    connection.execute("INSERT INTO readings (series_id, ts, value) "
                       "SELECT id, %s, 1.0 FROM series", (FIRST_TS - 1800,))
    connection.execute(
        "INSERT INTO streams (tenant_id, name, series_id, pinned, state, last_ts, "
        "readings_applied, next_forecast, accuracy, created_at, updated_at) "
        "SELECT 1, 'meter-' || id, id, false, %s, %s, 1, %s::json, %s::json, now(), now() "
        "FROM series", (b"\x01" * STATE_BYTES, FIRST_TS - 1800, orjson.dumps(FORECAST).decode(),
                        orjson.dumps(ACCURACY).decode()))
    connection.commit()
    connection.execute("ANALYZE")
    return [row[0] for row in connection.execute("SELECT id FROM streams ORDER BY id")]


def insert_unnest(cursor: psycopg.Cursor, rows: Rows) -> int:
    columns = [list(c) for c in zip(*rows, strict=True)]
    cursor.execute("INSERT INTO readings (series_id, ts, value) "
                   "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::float8[]) "
                   "ON CONFLICT DO NOTHING RETURNING series_id, ts", columns)
    return len(cursor.fetchall())


def insert_copy(cursor: psycopg.Cursor, rows: Rows) -> int:
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS new_readings (series_id int, ts bigint, "
                   "value float8) ON COMMIT DELETE ROWS")
    with cursor.copy("COPY new_readings FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int8", "float8"])
        for row in rows:
            copy.write_row(row)
    cursor.execute("INSERT INTO readings (series_id, ts, value) SELECT * FROM new_readings "
                   "ON CONFLICT DO NOTHING RETURNING series_id, ts")
    return len(cursor.fetchall())


def insert_executemany(cursor: psycopg.Cursor, rows: Rows) -> int:
    cursor.executemany("INSERT INTO readings (series_id, ts, value) VALUES (%s, %s, %s) "
                       "ON CONFLICT DO NOTHING RETURNING series_id, ts", rows, returning=True)
    inserted = 0
    while True:
        inserted += len(cursor.fetchall())
        if not cursor.nextset():
            return inserted


UPDATE_SET = ("model_id = u.model_id, state = u.state, last_ts = u.last_ts, "
              "readings_applied = u.readings_applied, next_forecast = u.next_forecast::json, "
              "accuracy = u.accuracy::json, updated_at = now()")
UPDATE_COLUMNS = "u(id, model_id, state, last_ts, readings_applied, next_forecast, accuracy)"


def update_executemany(cursor: psycopg.Cursor, rows: Rows) -> int:
    cursor.executemany(
        "UPDATE streams SET model_id = %s, state = %s, last_ts = %s, readings_applied = %s, "
        "next_forecast = %s::json, accuracy = %s::json, updated_at = now() WHERE id = %s",
        [(*row[1:], row[0]) for row in rows])
    return len(rows)


def update_values(cursor: psycopg.Cursor, rows: Rows) -> int:
    per_statement = PG_MAX_PARAMETERS // len(rows[0])
    casts = "(%s::int, %s::int, %s::bytea, %s::bigint, %s::int, %s::text, %s::text)"
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        cursor.execute(f"UPDATE streams AS s SET {UPDATE_SET} FROM (VALUES "
                       f"{', '.join([casts] * len(chunk))}) AS {UPDATE_COLUMNS} WHERE s.id = u.id",
                       [v for row in chunk for v in row])
    return len(rows)


def update_unnest(cursor: psycopg.Cursor, rows: Rows) -> int:
    columns = [list(c) for c in zip(*rows, strict=True)]
    cursor.execute(f"UPDATE streams AS s SET {UPDATE_SET} FROM unnest(%s::int[], %s::int[], "
                   "%s::bytea[], %s::bigint[], %s::int[], %s::text[], %s::text[]) AS "
                   f"{UPDATE_COLUMNS} WHERE s.id = u.id", columns)
    return len(rows)


def insert_unnest_binary(cursor: psycopg.Cursor, rows: Rows) -> int:
    columns = [list(c) for c in zip(*rows, strict=True)]
    cursor.execute("INSERT INTO readings (series_id, ts, value) "
                   "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::float8[]) "
                   "ON CONFLICT DO NOTHING RETURNING series_id, ts", columns, binary=True)
    return len(cursor.fetchall())


def update_unnest_binary(cursor: psycopg.Cursor, rows: Rows) -> int:
    columns = [list(c) for c in zip(*rows, strict=True)]
    cursor.execute(f"UPDATE streams AS s SET {UPDATE_SET} FROM unnest(%s::int[], %s::int[], "
                   "%s::bytea[], %s::bigint[], %s::int[], %s::text[], %s::text[]) AS "
                   f"{UPDATE_COLUMNS} WHERE s.id = u.id", columns, binary=True)
    return len(rows)


def update_copy(cursor: psycopg.Cursor, rows: Rows) -> int:
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS new_states (id int, model_id int, "
                   "state bytea, last_ts bigint, readings_applied int, next_forecast text, "
                   "accuracy text) ON COMMIT DELETE ROWS")
    with cursor.copy("COPY new_states FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "bytea", "int8", "int4", "text", "text"])
        for row in rows:
            copy.write_row(row)
    cursor.execute(f"UPDATE streams AS s SET {UPDATE_SET} FROM new_states AS {UPDATE_COLUMNS} "
                   "WHERE s.id = u.id")
    return len(rows)


Method = Callable[[psycopg.Cursor, Rows], int]
READINGS: dict[str, Method] = {"unnest": insert_unnest, "unnest binary": insert_unnest_binary,
                               "copy": insert_copy, "executemany": insert_executemany}
STATES: dict[str, Method] = {"executemany": update_executemany, "values": update_values,
                             "unnest": update_unnest, "unnest binary": update_unnest_binary,
                             "copy": update_copy}


def trial(connection: psycopg.Connection, method: Method, rows: Rows) -> float:
    with connection.cursor() as cursor:
        start = time.perf_counter()
        done = method(cursor, rows)
        elapsed = time.perf_counter() - start
    connection.rollback()
    assert done == len(rows), (method.__name__, done)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("STATECAST_TEST_DATABASE_URL"))
    args = parser.parse_args()
    assert args.postgres_url, "--postgres-url or STATECAST_TEST_DATABASE_URL"
    with fresh_postgres_database(args.postgres_url) as url:
        upgrade(url)
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(libpq) as connection:
            ids = setup(connection)
            readings = [(i, FIRST_TS, 1000.0 + i) for i in ids]  # series id == stream id here
            forecast, accuracy = orjson.dumps(FORECAST).decode(), orjson.dumps(ACCURACY).decode()
            states = [(i, None, bytes([i % 256]) * STATE_BYTES, FIRST_TS, 2, forecast, accuracy)
                      for i in ids]
            times: dict[str, list[float]] = {}
            for _ in range(ROUNDS + 1):  # the first round warms up and is not counted
                for name, method in READINGS.items():
                    times.setdefault(f"readings {name}", []).append(
                        trial(connection, method, readings))
                for name, method in STATES.items():
                    times.setdefault(f"states {name}", []).append(
                        trial(connection, method, states))
    print(f"{STREAMS:,} rows, median of {ROUNDS} rounds (alternated), each rolled back")
    print(f"{'method':24} {'median ms':>10} {'rows/s':>10}")
    for name, elapsed in times.items():
        median = statistics.median(elapsed[1:])
        print(f"{name:24} {1000 * median:10.1f} {STREAMS / median:10,.0f}")


if __name__ == "__main__":
    main()
