"""Ingest throughput over real HTTP: a million 15-minute readings as CSV and as JSON.

A `statecast serve` process runs on a temporary SQLite file, then on a fresh PostgreSQL
database; each upload goes to a series of its own, and the figure is readings per second of
the whole request (body sent, parsed, validated, stored, committed), against the goal.

    python -m bench.ingest [--readings 1000000] [--repeat 1] [--postgres-url postgresql+psycopg://...]

PostgreSQL comes from --postgres-url or STATECAST_TEST_DATABASE_URL; without either it is skipped.
Its `readings` table is partitioned by month (migration 0009): a fresh database has partitions
for the current month and two ahead only, so the first round of uploads lands in the DEFAULT
partition (maintenance late); then the maintenance pass moves those readings into month
partitions, and a second round ("postgresql/months") lands in them.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.goals import INGEST_READINGS_PER_S
from bench.harness import fresh_postgres_database, serving

DEFAULT_READINGS = 1_000_000
FREQ = "15min"
STEP_S = 15 * 60
START_S = 946_684_800  # 2000-01-01T00:00:00Z: a million 15-minute steps end in 2028
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
UPLOAD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Result:
    database: str
    fmt: str
    readings: int
    body_bytes: int
    seconds: float

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds


def make_readings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (Unix seconds) and a daily load curve with noise, 3 decimals, 0.1% missing."""
    rng = np.random.default_rng(seed)
    ts_s = START_S + STEP_S * np.arange(n, dtype=np.int64)
    day = 2 * np.pi * (ts_s % 86_400) / 86_400
    values = np.round(50 + 20 * np.sin(day - 2) + rng.normal(0, 3, n), 3)
    values[rng.random(n) < 0.001] = np.nan
    return ts_s, values


def iso_stamps(ts_s: np.ndarray) -> list[str]:
    return [f"{s}Z" for s in np.datetime_as_string(ts_s.astype("datetime64[s]"), unit="s")]


def csv_body(ts_s: np.ndarray, values: np.ndarray) -> bytes:
    cells = ["" if v != v else repr(v) for v in values.tolist()]  # NaN -> empty cell
    lines = (f"{t},{v}" for t, v in zip(iso_stamps(ts_s), cells, strict=True))
    return ("ts,value\n" + "\n".join(lines) + "\n").encode()


def json_body(ts_s: np.ndarray, values: np.ndarray) -> bytes:
    readings = [{"ts": t, "value": None if v != v else v}
                for t, v in zip(iso_stamps(ts_s), values.tolist(), strict=True)]
    return json.dumps({"readings": readings}).encode()


def upload(http: httpx.Client, name: str, body: bytes, content_type: str, n: int) -> float:
    """Seconds for one upload of `n` readings into a new series."""
    created = http.post("/v1/series", json={"name": name, "freq": FREQ})
    created.raise_for_status()
    sid = created.json()["id"]
    started = time.perf_counter()
    response = http.post(f"/v1/series/{sid}/readings", content=body,
                         headers={"Content-Type": content_type})
    seconds = time.perf_counter() - started
    if response.status_code != 200 or response.json()["inserted"] != n:
        raise RuntimeError(f"upload of {name} failed: {response.status_code} {response.text[:500]}")
    return seconds


def run_database(database: str, database_url: str, bodies: dict[str, bytes], n: int,
                 workdir: Path, repeat: int) -> list[Result]:
    """Each format `repeat` times, each time into a new series; the fastest run counts."""
    results = []
    with serving(database_url, workdir, STATECAST_MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES)
                 ) as (base_url, key, _), httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"},
            timeout=UPLOAD_TIMEOUT_S) as http:
        for fmt, content_type in (("csv", "text/csv"), ("json", "application/json")):
            runs_s = []
            for attempt in range(repeat):
                name = f"bench-{database.replace('/', '-')}-{fmt}-{attempt}"
                runs_s.append(upload(http, name, bodies[fmt], content_type, n))
                print(f"  {database:<17} {fmt:<4} {n / runs_s[-1]:>12,.0f} readings/s", flush=True)
            results.append(Result(database, fmt, n, len(bodies[fmt]), min(runs_s)))
    return results


def split_into_months(database_url: str) -> bool:
    """The workers' partition maintenance, run here once: True if `readings` is partitioned."""
    from app.db.engine import create_db_engine, create_session_factory
    from app.worker.maintenance_task import maintain_partitions

    engine = create_db_engine(database_url)
    report = maintain_partitions(create_session_factory(engine), now_s=int(time.time()),
                                 retention_days=None, warm_steps=0)
    engine.dispose()
    print(f"  maintenance: {len(report.created)} month partitions, "
          f"{report.moved_from_default:,} readings moved out of DEFAULT", flush=True)
    return bool(report.created)


def report(results: list[Result]) -> str:
    lines = [f"{'database':<17} {'format':<6} {'body MiB':>8} {'seconds':>8} "
             f"{'readings/s':>12} {'x goal':>7}"]
    for r in results:
        lines.append(f"{r.database:<17} {r.fmt:<6} {r.body_bytes / 2**20:>8.1f} {r.seconds:>8.2f} "
                     f"{r.readings_per_s:>12,.0f} {r.readings_per_s / INGEST_READINGS_PER_S:>7.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=DEFAULT_READINGS)
    parser.add_argument("--repeat", type=int, default=1,
                        help="uploads per case, the fastest reported (the machine is shared)")
    parser.add_argument("--postgres-url", default=os.environ.get("STATECAST_TEST_DATABASE_URL"),
                        help="an admin URL; a fresh database is created and dropped")
    args = parser.parse_args(argv)
    for name in ("readings", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")

    n = args.readings
    ts_s, values = make_readings(n)
    bodies = {"csv": csv_body(ts_s, values), "json": json_body(ts_s, values)}
    print(f"ingest of {n:,} {FREQ} readings over HTTP; goal {INGEST_READINGS_PER_S:,} readings/s",
          flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="statecast-bench-") as tmp:
        workdir = Path(tmp) / "sqlite"
        workdir.mkdir()
        results += run_database("sqlite", f"sqlite:///{workdir / 'bench.db'}", bodies, n, workdir,
                                args.repeat)
        if args.postgres_url:
            workdir = Path(tmp) / "postgresql"
            workdir.mkdir()
            with fresh_postgres_database(args.postgres_url) as url:
                results += run_database("postgresql", url, bodies, n, workdir, args.repeat)
                if split_into_months(url):
                    results += run_database("postgresql/months", url, bodies, n, workdir,
                                            args.repeat)
        else:
            print("  postgresql skipped: pass --postgres-url or set STATECAST_TEST_DATABASE_URL")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
