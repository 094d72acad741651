"""Streams at fleet scale: N streams over one model, one series (meter) each.

Per database and fleet size N, against a real `statecast serve`:
  (a) one-reading posts `POST /v1/streams/{id}/readings` over 16 and 64 keep-alive connections,
      one reading per stream per step, to streams spread over the whole fleet;
  (b) bulk posts `POST /v1/streams/readings`, batches of 10,000 readings over 10,000 streams
      (one reading per stream per step, every stream of the fleet);
readings/s, p50/p99 request latency, every non-200 answer (5xx apart), the database size per
stream and the server's RSS. The load generator runs in its own processes (`--client-processes`),
each with one thread per keep-alive `http.client` connection; its CPU time is reported.

Setup, not measured: through the API one series with four weeks of half-hourly history ending at
midnight UTC, one small stateful GRU trained by a `statecast worker`, one prototype stream; then
the fleet is cloned from the prototype in bulk SQL (series, model links, the last days of
readings, the day's seasonal fit, the stream row). Every measured reading falls within that one
day, so the per-reading path is measured and not the once-a-day seasonal fit.

    python -m bench.fleet [--sizes 1000,10000,100000] [--steps 4] [--databases sqlite,postgresql]
"""

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
from sqlalchemy import Engine, create_engine, inspect, text

from bench.goals import FLEET_BULK_READINGS_PER_S, FLEET_SCALING_MIN, FLEET_SINGLE_P99_MS_MAX
from bench.harness import (
    cpu_s,
    fresh_postgres_database,
    rss_bytes,
    running,
    serving_process,
    statecast_argv,
)

SPEC = {"cell": "gru", "units": 16, "stateful": True, "epochs": 1, "patience": 1,
        "batch_size": 64}
FREQ_S = 1800
STEPS_PER_DAY = 48
HISTORY_DAYS = 28
# The first measured reading: midnight UTC, right after the history's last reading at 23:30.
DAY_START_S = 1_706_745_600  # 2024-02-01T00:00:00Z
# A post's answer forecasts the step after its reading, so the last reading of the day (23:30)
# would need the next day's seasonal fit: readings stop one step before.
MAX_STEPS = STEPS_PER_DAY - 1
# Readings copied into each cloned series: the seasonal-naive value a post judges against is one
# season (one day of half-hours) back, so two days cover every step of the measured day.
COPIED_DAYS = 2
BULK_BATCH = 10_000
BULK_PATH = "/v1/streams/readings"
PREFIX = "meter-"
# The day-turn fleets: streams at 23:00 of the measured day that post 23:30 and then 00:00 of
# the next day; without the next day's fit (the workers are late), then with it made ahead.
TURN_PREFIXES = {"day turn, fit late": "turn-", "day turn, fit made ahead": "ahead-"}
TURN_STEPS = (MAX_STEPS, MAX_STEPS + 1)
NEXT_DAY_S = DAY_START_S + 86_400
START_DELAY_S = 1.5
# Bulk posts ask for no answer body (`Prefer: return=minimal`: a 204 when every stream was
# applied), as a fleet's collector that only needs to know that all went in would; the full
# answer, ~250 bytes a stream (~2.5 MB a post), is measured with --full-answers.
MINIMAL = {"Prefer": "return=minimal"}
# The server settings the figures depend on, pinned so that a change of a default does not
# silently change what is measured: the caches whose size the server's RSS follows (the
# seasonal fits one: ~16,000 half-hourly fits), the body limit a 10,000-reading post must fit
# (~0.8 MB), the readings quota the cloned fleet must fit (N x 96 readings, plus those
# posted), and how long a bulk post waits for SQLite's write lock behind the single posts.
SERVER_SETTINGS = {
    "STATECAST_SEASONAL_FIT_CACHE_BYTES": str(32 * 2**20),
    "STATECAST_MODEL_CACHE_SIZE": "16",
    "STATECAST_MAX_UPLOAD_BYTES": str(64 * 2**20),
    "STATECAST_TENANT_MAX_READINGS": str(100_000_000),
    "STATECAST_DATABASE_LOCK_TIMEOUT_S": "10",
    "STATECAST_BODY_TIMEOUT_S": "30",
}
SAMPLES_KEPT = 5

Call = tuple[str, str, bytes | None, int]  # method, path, body, readings it carries


def iso(ts_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_s))


def value_at(ts_s: int) -> float:
    """The synthetic meter: a daily sine around 1000."""
    step = (ts_s // FREQ_S) % STEPS_PER_DAY
    return round(1000 + 200 * math.sin(2 * math.pi * step / STEPS_PER_DAY), 3)


def stream_name(index: int) -> str:
    return f"{PREFIX}{index}"


# -- the load generator: processes of threads, one keep-alive connection each -------------


class Lane(Protocol):
    """What one connection sends, in order; returned to the parent afterwards (with its state)."""

    def calls(self) -> Iterator[Call]: ...


@dataclass
class CallList:
    """A fixed list of calls."""

    items: list[Call]

    def calls(self) -> Iterator[Call]:
        items, self.items = self.items, []  # sent back empty: nothing to pickle twice
        yield from items


@dataclass
class Tally:
    """What one client process saw."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    readings: int = 0
    applied: int = 0
    refused: int = 0
    duplicates: int = 0
    samples: list[str] = field(default_factory=list)
    transport_samples: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    start_s: float = math.inf
    end_s: float = 0.0

    def add(self, other: "Tally") -> None:
        self.latencies_s += other.latencies_s
        self.statuses.update(other.statuses)
        self.transport_errors += other.transport_errors
        self.readings += other.readings
        self.applied += other.applied
        self.refused += other.refused
        self.duplicates += other.duplicates
        self.samples += other.samples[:SAMPLES_KEPT - len(self.samples)]
        self.transport_samples += other.transport_samples[
            :SAMPLES_KEPT - len(self.transport_samples)]
        self.cpu_s += other.cpu_s
        self.start_s, self.end_s = min(self.start_s, other.start_s), max(self.end_s, other.end_s)


def _send(port: int, headers: dict[str, str], lane: Lane, start_at: float,
          deadline: float | None, tally: Tally, lock: threading.Lock, minimal: bool) -> None:
    import http.client

    mine = Tally()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.connect()
    time.sleep(max(0.0, start_at - time.monotonic()))
    mine.start_s = time.monotonic()
    calls = lane.calls()
    # The clock is read before a call is drawn, so a lane's state counts only calls sent.
    while deadline is None or time.monotonic() < deadline:
        call = next(calls, None)
        if call is None:
            break
        method, path, body, readings = call
        start = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=(
                {**headers, **MINIMAL} if path == BULK_PATH and minimal else headers))
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            mine.transport_errors += 1
            if len(mine.transport_samples) < SAMPLES_KEPT:
                mine.transport_samples.append(
                    f"{method} {path}: {exc!r} after {time.perf_counter() - start:.1f} s")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        mine.latencies_s.append(time.perf_counter() - start)
        mine.statuses[response.status] += 1
        if not 200 <= response.status < 300:
            if len(mine.samples) < SAMPLES_KEPT:
                mine.samples.append(f"{method} {path}: {response.status} {payload[:300]!r}")
        elif path == BULK_PATH and response.status == 204:  # every stream applied
            mine.applied += readings
            mine.readings += readings
        elif path == BULK_PATH:
            answer = json.loads(payload)
            mine.applied += answer["applied"]
            mine.refused += answer["refused"]
            mine.duplicates += answer["duplicates"]
            mine.readings += answer["applied"]
            if answer["refused"] and len(mine.samples) < SAMPLES_KEPT:
                refused = [s for s in answer["streams"] if s["status"] == "refused"]
                mine.samples.append(f"bulk refused {answer['refused']}: {refused[:2]!r}"[:400])
        else:
            mine.readings += readings
    mine.end_s = time.monotonic()
    connection.close()
    with lock:
        tally.add(mine)


def _drive(port: int, key: str, lanes: list[Lane], start_at: float,
           seconds: float | None, minimal: bool) -> tuple[Tally, list[Lane]]:
    """One client process: a thread per lane, all starting at `start_at` (monotonic clock)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    deadline = None if seconds is None else start_at + seconds
    tally, lock = Tally(), threading.Lock()
    cpu_before = time.process_time()
    threads = [threading.Thread(target=_send, args=(port, headers, lane, start_at, deadline,
                                                    tally, lock, minimal)) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.cpu_s = time.process_time() - cpu_before
    return tally, lanes


@dataclass
class Measured:
    """One measured run: throughput, latency, errors, and who used the CPU."""

    connections: int
    requests: int
    wall_s: float
    readings: int
    p50_ms: float
    p99_ms: float
    non_200: int
    non_2xx: int
    status_5xx: int
    transport_errors: int
    statuses: dict[int, int]
    client_cpu_s: float
    server_cpu_s: float
    applied: int = 0
    refused: int = 0
    duplicates: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s else 0.0


def drive(port: int, key: str, server_pid: int, lanes: Sequence[Lane], processes: int,
          seconds: float | None = None, minimal: bool = True) -> tuple[Measured, list[Lane]]:
    """Send every lane's calls over its own connection from `processes` client processes;
    bulk posts with `Prefer: return=minimal` unless not `minimal`.

    Returns the measurement and the lanes as they came back (a lane may carry its end state).
    """
    processes = max(1, min(processes, len(lanes)))
    groups = [list(lanes[p::processes]) for p in range(processes)]
    total, back = Tally(), []
    server_before = cpu_s(server_pid)
    with get_context("fork").Pool(processes) as pool:
        start_at = time.monotonic() + START_DELAY_S
        results = pool.starmap(_drive, [(port, key, g, start_at, seconds, minimal)
                                        for g in groups])
    server_used = cpu_s(server_pid) - server_before
    for tally, returned in results:
        total.add(tally)
        back += returned
    latencies = np.asarray(total.latencies_s) * 1000 if total.latencies_s else np.zeros(1)
    wall = total.end_s - total.start_s
    return Measured(
        connections=len(lanes), requests=len(total.latencies_s), wall_s=wall,
        readings=total.readings, p50_ms=float(np.percentile(latencies, 50)),
        p99_ms=float(np.percentile(latencies, 99)),
        non_200=len(total.latencies_s) - total.statuses.get(200, 0),
        non_2xx=sum(n for s, n in total.statuses.items() if not 200 <= s < 300),
        status_5xx=sum(n for s, n in total.statuses.items() if s >= 500),
        transport_errors=total.transport_errors, statuses=dict(total.statuses),
        client_cpu_s=total.cpu_s, server_cpu_s=server_used, applied=total.applied,
        refused=total.refused, duplicates=total.duplicates,
        samples=total.samples + total.transport_samples), back


# -- the fleet: one prototype made through the API, the rest cloned in bulk SQL ------------


@dataclass
class Fleet:
    """A server, its database and the streams on it; `steps[i]`: readings stream i has taken."""

    database: str
    database_url: str
    engine: Engine
    workdir: Path
    port: int
    key: str
    server_pid: int
    tenant_id: int
    model_id: int
    series_id: int
    size: int = 1
    steps: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    clone_s: dict[int, float] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def next_ts(self, index: int, ahead: int = 0) -> int:
        return DAY_START_S + (int(self.steps[index]) + ahead) * FREQ_S

    def check_steps(self, indices: np.ndarray, ahead: int) -> None:
        top = int(self.steps[indices].max()) + ahead
        if top > MAX_STEPS:
            raise SystemExit(f"A stream would take {top} readings of the measured day; at most "
                             f"{MAX_STEPS} stay within its seasonal fit: lower --steps or "
                             "the number of sizes.")

    def database_bytes(self) -> int:
        with self.engine.connect() as connection:
            if self.is_sqlite:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                path = Path(self.engine.url.database or "")
                return path.stat().st_size + _size(path.with_name(path.name + "-wal"))
            return int(connection.execute(text("SELECT pg_database_size(current_database())"))
                       .scalar_one())

    def table_bytes(self) -> dict[str, int]:
        """Bytes on disk per table, its indexes included."""
        query = ("SELECT s.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_schema s "
                 "ON s.name = d.name GROUP BY s.tbl_name" if self.is_sqlite else
                 # A partitioned table's partitions count as the table (readings, by month).
                 "SELECT coalesce(pg_partition_root(relid)::regclass::text, relname), "
                 "SUM(pg_total_relation_size(relid)) FROM pg_statio_user_tables GROUP BY 1")
        with self.engine.connect() as connection:
            return {name: int(size) for name, size in connection.execute(text(query)).all()}

    def resync(self) -> int:
        """Take each stream's position from its row; returns how many were behind the plan.

        A stream is behind when a reading sent to it was refused or failed, or was never sent
        because its run hit the time limit; its next reading then follows its real last one.
        """
        with self.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT name, last_ts FROM streams WHERE tenant_id = :t AND name LIKE :like"),
                {"t": self.tenant_id, "like": f"{PREFIX}%"}).all()
        index = np.array([int(name[len(PREFIX):]) for name, _ in rows], dtype=np.int64)
        steps = (np.array([last for _, last in rows], dtype=np.int64) - DAY_START_S) // FREQ_S + 1
        behind = int(np.count_nonzero(steps != self.steps[index]))
        self.steps[index] = steps
        return behind

    def grow(self, size: int) -> float:
        """Clone streams 1..size-1 that do not exist yet from the prototype (stream 0)."""
        if size <= self.size:
            return 0.0
        start = time.perf_counter()
        clone_fleet(self.engine, tenant_id=self.tenant_id, model_id=self.model_id,
                    series_id=self.series_id, first=self.size, last=size - 1)
        self.steps = np.concatenate([self.steps, np.full(size - self.size, self.steps[0])])
        self.size = size
        elapsed = time.perf_counter() - start
        self.clone_s[size] = elapsed
        return elapsed


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _columns(engine: Engine, table: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(table)]


def _copy(connection: Any, engine: Engine, table: str, overrides: dict[str, str],
          source: str, params: dict[str, Any], *, drop: Sequence[str] = (),
          prefix: str = "", suffix: str = "") -> int:
    """INSERT ... SELECT every column of `table` from the row aliased `p` in `source`.

    Columns are read from the live table, so columns added by later migrations are copied too;
    `overrides` gives the expressions of the columns that differ from the prototype's.
    """
    columns = [c for c in _columns(engine, table) if c not in drop]
    values = [overrides.get(c, f"p.{c}") for c in columns]
    result = connection.execute(text(
        f"INSERT INTO {table} ({', '.join(columns)}) {prefix} "
        f"SELECT {', '.join(values)} FROM {source} {suffix}"), params)
    return int(result.rowcount)


def clone_fleet(engine: Engine, *, tenant_id: int, model_id: int, series_id: int,
                first: int, last: int, with_streams: bool = True, prefix: str = PREFIX) -> None:
    """Clone series `first..last` (names `prefix<i>`) and their streams from the prototype.

    The prototype's series and stream are copied as they are now (state, last reading, next
    forecast, live accuracy); each clone gets the last `COPIED_DAYS` of its readings and the
    seasonal fits of the measured day, and the model is linked to it as if trained on it.
    Without `with_streams`, only empty series (targets of uploads).
    """
    numbers = ("WITH RECURSIVE g(i) AS (SELECT CAST(:first AS INTEGER) UNION ALL "
               "SELECT i + 1 FROM g WHERE i < CAST(:last AS INTEGER))")
    new_series = ("series s CROSS JOIN {table} p WHERE s.tenant_id = :tenant "
                  "AND s.id > :after AND s.name LIKE :like AND {where}")
    params = {"first": first, "last": last, "tenant": tenant_id, "proto": series_id,
              "model": model_id, "like": f"{prefix}%"}
    with engine.begin() as connection:
        proto_stream = connection.execute(text(
            "SELECT id, last_ts FROM streams WHERE series_id = :proto"), params).one()
        params["after"] = connection.execute(text("SELECT MAX(id) FROM series")).scalar_one()
        params["since"] = proto_stream.last_ts - COPIED_DAYS * 86_400
        params["stream"] = proto_stream.id
        params["day"] = DAY_START_S
        _copy(connection, engine, "series", {"name": f"'{prefix}' || CAST(g.i AS TEXT)"},
              "series p CROSS JOIN g WHERE p.id = :proto", params, drop=["id"], prefix=numbers)
        if not with_streams:
            return
        _copy(connection, engine, "model_series", {"series_id": "s.id"},
              new_series.format(table="model_series",
                                where="p.series_id = :proto AND p.model_id = :model"), params)
        _copy(connection, engine, "readings", {"series_id": "s.id"},
              new_series.format(table="readings", where="p.series_id = :proto AND p.ts > :since"),
              params, suffix="ORDER BY s.id, p.ts")
        _copy(connection, engine, "seasonal_fits", {"series_id": "s.id"},
              new_series.format(table="seasonal_fits",
                                where="p.series_id = :proto AND p.boundary_ts >= :day"), params)
        _copy(connection, engine, "streams", {"series_id": "s.id", "name": "s.name"},
              new_series.format(table="streams", where="p.id = :stream"), params, drop=["id"])
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":  # as autovacuum would, before the first query
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def history() -> list[dict[str, object]]:
    """Four weeks of half-hours up to the measured day, with a little noise."""
    n = HISTORY_DAYS * STEPS_PER_DAY
    noise = np.random.default_rng(0).normal(0, 10, n)
    start = DAY_START_S - n * FREQ_S
    return [{"ts": iso(start + i * FREQ_S), "value": value_at(start + i * FREQ_S) + float(noise[i])}
            for i in range(n)]


def _widen_model(workdir: Path, model_id: int, names: Sequence[str]) -> None:
    """Give the model the per-series scales of every clone, as if it had been trained on them.

    A model scales each series by the scale it learned for that series' name; the clones share
    the prototype's readings, so they share its scales. Done before the server first loads it.
    """
    path = workdir / "models" / str(model_id) / "meta.json"
    meta = json.loads(path.read_text())
    for key in ("scales", "mase_scales"):
        if isinstance(meta.get(key), dict) and meta[key]:
            value = next(iter(meta[key].values()))
            meta[key].update(dict.fromkeys(names, value))
    path.write_text(json.dumps(meta))


@contextlib.contextmanager
def fleet(database: str, database_url: str, workdir: Path, max_streams: int,
          processes: int = 1) -> Iterator[Fleet]:
    """A server of `processes` API processes with one prototype stream on a trained model,
    ready to grow to `max_streams`."""
    with serving_process(database_url, workdir, STATECAST_WORKER_POLL_INTERVAL_S="0.2",
                         STATECAST_API_PROCESSES=str(processes), **SERVER_SETTINGS
                         ) as (url, key, env, process):
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)
        series = api.post("/v1/series", json={"name": stream_name(0), "freq": "30min"})
        series.raise_for_status()
        sid = series.json()["id"]
        api.post(f"/v1/series/{sid}/readings", json={"readings": history()}).raise_for_status()
        job = api.post("/v1/models", json={"series_ids": [sid], "spec": SPEC}).json()["job"]
        with running([*statecast_argv(), "worker"], env, workdir / "worker.log"):
            while api.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
                time.sleep(0.5)
        model = api.get(f"/v1/models/{job['model_id']}").json()
        if model["status"] != "ready":
            raise RuntimeError(f"training failed: {model}")
        _widen_model(workdir, model["id"], [f"{prefix}{i}" for i in range(max_streams + 1)
                                            for prefix in (PREFIX, *TURN_PREFIXES.values())])
        api.post("/v1/streams", json={"series_id": sid, "stream_id": stream_name(0)}
                 ).raise_for_status()
        engine = create_engine(database_url, connect_args={"timeout": 60}
                               if database_url.startswith("sqlite") else {})
        with engine.connect() as connection:
            tenant_id = connection.execute(text("SELECT tenant_id FROM series WHERE id = :s"),
                                           {"s": sid}).scalar_one()
            fits = connection.execute(text(
                "SELECT COUNT(*) FROM seasonal_fits WHERE series_id = :s AND boundary_ts = :d"),
                {"s": sid, "d": DAY_START_S}).scalar_one()
        if not fits:
            raise RuntimeError("the prototype stream made no seasonal fit for the measured day")
        turn_prototypes(api, engine, workdir, tenant_id=tenant_id, model_id=model["id"],
                        series_id=sid)
        try:
            yield Fleet(database=database, database_url=database_url, engine=engine,
                        workdir=workdir, port=int(url.rsplit(":", 1)[1]), key=key,
                        server_pid=process.pid, tenant_id=tenant_id, model_id=model["id"],
                        series_id=sid)
        finally:
            engine.dispose()


# -- what is measured ------------------------------------------------------------------------


def turn_prototypes(api: httpx.Client, engine: Engine, workdir: Path, *, tenant_id: int,
                    model_id: int, series_id: int) -> None:
    """`turn-0`, the prototype moved on to 23:00 of the measured day through the API, and
    `ahead-0`, a copy of it whose next day's fit is made by the workers' code (fits_task)."""
    late, ahead = TURN_PREFIXES.values()
    clone_fleet(engine, tenant_id=tenant_id, model_id=model_id, series_id=series_id, first=0,
                last=0, prefix=late)
    for step in range(MAX_STEPS):
        api.post(f"/v1/streams/{late}0/readings", content=reading_body(
            DAY_START_S + step * FREQ_S), headers={"Content-Type": "application/json"}
        ).raise_for_status()
    with engine.connect() as connection:
        turn_id = connection.execute(text("SELECT id FROM series WHERE name = :n"),
                                     {"n": f"{late}0"}).scalar_one()
    clone_fleet(engine, tenant_id=tenant_id, model_id=model_id, series_id=turn_id, first=0,
                last=0, prefix=ahead)
    from sqlalchemy import select

    from app.db.engine import create_session_factory, transaction
    from app.db.tables import Series
    from app.ml.forecaster import Forecaster
    from app.streams.seasonal_fits import make_fit, store_fit

    forecaster = Forecaster.load(workdir / "models" / str(model_id))
    with transaction(create_session_factory(engine), write=True) as session:
        series = session.scalars(select(Series).where(Series.name == f"{ahead}0")).one()
        fit, _ = make_fit(session, series, forecaster.seasonal_fitter,
                          forecaster.features.fit_steps, NEXT_DAY_S)
        store_fit(session, series.id, model_id, NEXT_DAY_S, fit)


def drop_turn_fleet(engine: Engine, prefix: str) -> None:
    """Remove a day-turn fleet's clones (not its prototype, `<prefix>0`)."""
    clones = "SELECT id FROM series WHERE name LIKE :like AND name <> :proto"
    params = {"like": f"{prefix}%", "proto": f"{prefix}0"}
    with engine.begin() as connection:
        for table in ("streams", "seasonal_fits", "readings", "model_series"):
            connection.execute(text(f"DELETE FROM {table} WHERE series_id IN ({clones})"), params)
        connection.execute(text(f"DELETE FROM series WHERE id IN ({clones})"), params)


def turn_lanes(prefix: str, size: int, batch: int = BULK_BATCH) -> list[Lane]:
    """Bulk posts of the last reading of the day to streams 1..size, then of the first of the
    next day, in batches of `batch` streams."""
    calls: list[Call] = []
    for step in TURN_STEPS:
        ts = DAY_START_S + step * FREQ_S
        for first in range(1, size + 1, batch):
            readings = [{"stream_id": f"{prefix}{i}", "ts": iso(ts), "value": value_at(ts)}
                        for i in range(first, min(first + batch, size + 1))]
            calls.append(("POST", BULK_PATH, json.dumps({"readings": readings}).encode(),
                          len(readings)))
    return [CallList(calls)]


def measure_turn(fleet_: Fleet, size: int, label: str, args: argparse.Namespace) -> Measured:
    """The day turn of `size` streams cloned from the turn prototype of `label`."""
    prefix = TURN_PREFIXES[label]
    with fleet_.engine.connect() as connection:
        proto = connection.execute(text("SELECT id FROM series WHERE name = :n"),
                                   {"n": f"{prefix}0"}).scalar_one()
    drop_turn_fleet(fleet_.engine, prefix)
    clone_fleet(fleet_.engine, tenant_id=fleet_.tenant_id, model_id=fleet_.model_id,
                series_id=proto, first=1, last=size, prefix=prefix)
    measured, _ = drive(fleet_.port, fleet_.key, fleet_.server_pid, turn_lanes(prefix, size), 1,
                        args.run_seconds, not args.full_answers)
    return measured


def reading_body(ts_s: int) -> bytes:
    return json.dumps({"readings": [{"ts": iso(ts_s), "value": value_at(ts_s)}]}).encode()


def single_lanes(fleet_: Fleet, indices: np.ndarray, connections: int, steps: int) -> list[Lane]:
    """One-reading posts: each stream in one lane only, so its readings arrive in order."""
    fleet_.check_steps(indices, steps)
    lanes: list[Lane] = []
    for c in range(connections):
        mine = indices[c::connections].tolist()
        lanes.append(CallList([
            ("POST", f"/v1/streams/{stream_name(i)}/readings", reading_body(fleet_.next_ts(i, k)), 1)
            for k in range(steps) for i in mine]))
    fleet_.steps[indices] += steps
    return lanes


def bulk_lanes(fleet_: Fleet, steps: int, batch: int = BULK_BATCH) -> list[Lane]:
    """One reading for every stream per step, in batches of `batch` streams, in stream order."""
    everyone = np.arange(fleet_.size)
    fleet_.check_steps(everyone, steps)
    calls: list[Call] = []
    for _ in range(steps):
        for first in range(0, fleet_.size, batch):
            chunk = range(first, min(first + batch, fleet_.size))
            readings = []
            for i in chunk:
                ts = fleet_.next_ts(i)
                readings.append({"stream_id": stream_name(i), "ts": iso(ts),
                                 "value": value_at(ts)})
            calls.append(("POST", BULK_PATH, json.dumps({"readings": readings}).encode(),
                          len(readings)))
        fleet_.steps[everyone] += 1
    return [CallList(calls)]


def spread(size: int, count: int) -> np.ndarray:
    """`count` stream indices spread evenly over the fleet, the prototype (0) among them."""
    return np.unique(np.linspace(0, size - 1, min(size, count)).astype(np.int64))


@dataclass
class Stage:
    database: str
    size: int
    clone_s: float
    bytes_before: int
    bytes_after: int
    rss_before: int
    rss_after: int
    behind: dict[str, int]
    tables: dict[str, int]
    runs: dict[str, Measured]


def measure_stage(fleet_: Fleet, size: int, args: argparse.Namespace) -> Stage:
    clone = fleet_.grow(size)
    print(f"[{fleet_.database}] N={size:,}: cloned in {clone:.1f} s", file=sys.stderr, flush=True)
    before, rss_before = fleet_.database_bytes(), rss_bytes(fleet_.server_pid)
    runs: dict[str, Measured] = {}
    behind: dict[str, int] = {}
    indices = spread(size, args.single_streams)
    for connections in args.connections:
        label = f"single x{connections}"
        lanes = single_lanes(fleet_, indices, connections, args.steps)
        runs[label], _ = drive(fleet_.port, fleet_.key, fleet_.server_pid, lanes,
                               min(args.client_processes, connections), args.run_seconds)
        behind[label] = fleet_.resync()
        _report(fleet_.database, size, label, runs[label], behind[label])
    runs["bulk"], _ = drive(fleet_.port, fleet_.key, fleet_.server_pid,
                            bulk_lanes(fleet_, args.bulk_steps), 1, args.run_seconds,
                            not args.full_answers)
    behind["bulk"] = fleet_.resync()
    _report(fleet_.database, size, "bulk", runs["bulk"], behind["bulk"])
    if args.day_turn:
        for label in TURN_PREFIXES:
            runs[label] = measure_turn(fleet_, size, label, args)
            behind[label] = 0
            _report(fleet_.database, size, label, runs[label], 0)
    return Stage(fleet_.database, size, clone, before, fleet_.database_bytes(), rss_before,
                 rss_bytes(fleet_.server_pid), behind, fleet_.table_bytes(), runs)


def _report(database: str, size: int, label: str, m: Measured, behind: int) -> None:
    print(f"[{database}] N={size:,} {label}: {m.requests} requests in {m.wall_s:.1f} s, "
          f"{m.readings_per_s:,.0f} readings/s, p50 {m.p50_ms:.1f} ms, p99 {m.p99_ms:.1f} ms, "
          f"statuses {m.statuses}, transport errors {m.transport_errors}; client CPU "
          f"{m.client_cpu_s:.1f} s, server CPU {m.server_cpu_s:.1f} s; {behind} streams behind "
          "the plan",
          file=sys.stderr, flush=True)
    for sample in m.samples:
        print(f"    {sample}", file=sys.stderr)


def print_tables(stages: list[Stage]) -> None:
    print("| database | N | case | conns | requests | readings/s | p50 ms | p99 ms | non-200 | 5xx "
          "| streams behind | client CPU | server CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in stages:
        for label, m in s.runs.items():
            print(f"| {s.database} | {s.size:,} | {label} | {m.connections} | {m.requests:,} | "
                  f"{m.readings_per_s:,.0f} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | "
                  f"{m.non_200 + m.transport_errors} | {m.status_5xx} | {s.behind[label]:,} | "
                  f"{100 * m.client_cpu_s / m.wall_s:.0f}% | "
                  f"{100 * m.server_cpu_s / m.wall_s:.0f}% |")
    print()
    print("| database | N | clone s | DB bytes/stream before | after | server RSS before | after |")
    print("|---|---|---|---|---|---|---|")
    for s in stages:
        print(f"| {s.database} | {s.size:,} | {s.clone_s:.1f} | {s.bytes_before / s.size:,.0f} | "
              f"{s.bytes_after / s.size:,.0f} | {s.rss_before / 2**20:,.0f} MiB | "
              f"{s.rss_after / 2**20:,.0f} MiB |")
    print()
    names = ("readings", "seasonal_fits", "streams", "series", "model_series")
    print(f"| database | N | bytes/stream after: {' | '.join(names)} | the rest |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for s in stages:
        rest = sum(v for k, v in s.tables.items() if k not in names)
        print(f"| {s.database} | {s.size:,} | "
              + " | ".join(f"{s.tables.get(n, 0) / s.size:,.0f}" for n in names)
              + f" | {rest / s.size:,.0f} |")
    print()
    for database in dict.fromkeys(s.database for s in stages):
        mine = {s.size: s for s in stages if s.database == database}
        bulk = mine.get(10_000) or mine[max(mine)]
        b = bulk.runs["bulk"]
        print(f"[{database}] bulk at N={bulk.size:,}: {b.readings_per_s:,.0f} stream-readings/s "
              f"= {b.readings_per_s / FLEET_BULK_READINGS_PER_S:.2f}x the goal of "
              f"{FLEET_BULK_READINGS_PER_S:,}"
              + ("" if bulk.size == 10_000 else " (no N=10,000 run)"))
        if len(mine) > 1:
            small, large = mine[min(mine)], mine[max(mine)]
            for label in large.runs:
                ratio = (large.runs[label].readings_per_s /
                         max(small.runs[label].readings_per_s, 1e-9))
                print(f"[{database}] {label}: readings/s at N={large.size:,} / N={small.size:,} "
                      f"= {ratio:.2f} (goal >= {FLEET_SCALING_MIN:.2f}: "
                      f"{'met' if ratio >= FLEET_SCALING_MIN else 'missed'})")
        for s in mine.values():
            for label in TURN_PREFIXES:
                if label in s.runs:
                    ratio = s.runs[label].readings_per_s / max(s.runs["bulk"].readings_per_s, 1e-9)
                    print(f"[{database}] N={s.size:,} {label}: {ratio:.2f} x mid-day bulk "
                          f"readings/s (goal with fits made ahead >= 0.80)")
            x64 = s.runs.get("single x64")
            if x64 is not None:
                met = x64.status_5xx == 0 and x64.transport_errors == 0 and (
                    database != "postgresql" or x64.p99_ms < FLEET_SINGLE_P99_MS_MAX)
                print(f"[{database}] N={s.size:,} single x64: {x64.status_5xx} 5xx, p99 "
                      f"{x64.p99_ms:.1f} ms (goal: no 5xx" +
                      (f", p99 < {FLEET_SINGLE_P99_MS_MAX:.0f} ms" if database == "postgresql" else "") +
                      f": {'met' if met else 'missed'})")


def databases(names: Sequence[str], root: Path, postgres_url: str | None
              ) -> Iterator[tuple[str, contextlib.AbstractContextManager[str]]]:
    """Each asked-for database as a name and a context giving a fresh URL."""
    for name in names:
        if name == "sqlite":
            yield name, contextlib.nullcontext(f"sqlite:///{root / 'sqlite' / 'bench.db'}")
        elif name == "postgresql":
            if not postgres_url:
                raise SystemExit("--postgres-url (or STATECAST_TEST_DATABASE_URL) is needed")
            yield name, fresh_postgres_database(postgres_url)
        else:
            raise SystemExit(f"unknown database {name!r}: expected sqlite or postgresql")


def int_list(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in value.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int_list, default=[1000, 10_000, 100_000])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--steps", type=int, default=4,
                        help="readings per stream in each single-post run")
    parser.add_argument("--bulk-steps", type=int, default=None,
                        help="readings per stream in the bulk run (default: --steps)")
    parser.add_argument("--connections", type=int_list, default=[16, 64])
    parser.add_argument("--single-streams", type=int, default=1000,
                        help="streams (spread over the fleet) that the single posts go to")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--run-seconds", type=float, default=60.0,
                        help="stop each run after this long (the rest of its calls are not sent)")
    parser.add_argument("--day-turn", action=argparse.BooleanOptionalAction, default=True,
                        help="also the day turn: every stream's last reading of the day, then "
                             "its first of the next, with the next day's fit late, then made "
                             "ahead")
    parser.add_argument("--full-answers", action="store_true",
                        help="bulk posts without `Prefer: return=minimal`: the server builds "
                             "and sends its full answer (~2.5 MB a post of 10,000 streams)")
    parser.add_argument("--postgres-url", default=os.environ.get("STATECAST_TEST_DATABASE_URL"))
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    args.bulk_steps = args.bulk_steps or args.steps
    sizes = sorted(args.sizes)
    stages: list[Stage] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, database in databases(args.databases.split(","), Path(tmp), args.postgres_url):
            with database as url:
                start = time.perf_counter()
                with fleet(name, url, Path(tmp) / name, max(sizes)) as fleet_:
                    print(f"[{name}] prototype set up in {time.perf_counter() - start:.0f} s",
                          file=sys.stderr, flush=True)
                    for size in sizes:
                        stages.append(measure_stage(fleet_, size, args))
    print_tables(stages)
    if args.json:
        args.json.write_text(json.dumps([{**s.__dict__, "runs": {
            k: {**m.__dict__, "rps": m.rps, "readings_per_s": m.readings_per_s}
            for k, m in s.runs.items()}} for s in stages], indent=1, default=str))


if __name__ == "__main__":
    main()
