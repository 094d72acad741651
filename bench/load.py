"""The mixed load of issue 12: stream posts, stream forecasts and uploads at once, per database.

For `--seconds` over `--connections` keep-alive connections (from client processes, not the
server's): 80% one-reading posts to streams (each connection walks its own streams, in order),
15% `GET /v1/streams/{id}/forecast?horizon=48` of any stream, 5% uploads of 500 new readings
(`POST /v1/series/{id}/readings`) to series that have no stream, one series per connection.
Reports req/s, p50, p99, 5xx and other non-2xx answers. The fleet is set up as in bench/fleet.py
(one prototype through the API, the rest cloned in bulk SQL).

    python -m bench.load [--seconds 60] [--connections 64,256] [--streams 4000] [--processes 1,2]

`--processes` runs the whole case once per number of API processes (`statecast serve
--processes N`), each on a database and fleet of its own; server CPU and RSS are those of the
server's whole process tree.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
from sqlalchemy import text

from bench.fleet import (
    DAY_START_S,
    FREQ_S,
    MAX_STEPS,
    Call,
    Fleet,
    Lane,
    Measured,
    clone_fleet,
    databases,
    drive,
    fleet,
    int_list,
    iso,
    reading_body,
    stream_name,
    value_at,
)
from bench.goals import LOAD_P99_MS_MAX, LOAD_SPEEDUP_MIN
from bench.harness import rss_bytes

POST_SHARE = 0.80
FORECAST_SHARE = 0.15
UPLOAD_ROWS = 500
FORECAST_HORIZON = 48
UPLOAD_PREFIX = "upload-"
# Requests per second and database before issue 12, at 64 connections.
OLD_RPS = {"postgresql": 101.0, "sqlite": 141.0}


@dataclass
class MixedLane:
    """One connection's mix; keeps where its streams and its upload series have got to."""

    seed: int
    streams: list[int]
    steps: list[int]
    fleet_size: int
    day_start_s: int
    upload_series: int
    upload_next_s: int
    post_share: float = POST_SHARE
    forecast_share: float = FORECAST_SHARE
    exhausted: int = 0
    posts: int = 0
    forecasts: int = 0
    uploads: int = 0
    turn: int = field(default=0, repr=False)

    def calls(self) -> Iterator[Call]:
        draw = random.Random(self.seed)
        while True:
            r = draw.random()
            if r < self.post_share:
                call = self._post()
                if call is not None:
                    self.posts += 1
                    yield call
                    continue
            if r < self.post_share + self.forecast_share:  # and posts once the lane's day is over
                self.forecasts += 1
                yield ("GET", f"/v1/streams/{stream_name(draw.randrange(self.fleet_size))}"
                       f"/forecast?horizon={FORECAST_HORIZON}", None, 0)
            else:
                self.uploads += 1
                yield self._upload()

    def _post(self) -> Call | None:
        """The next reading of the next of this lane's streams, while the day lasts."""
        for _ in range(len(self.streams)):
            k = self.turn
            self.turn = (self.turn + 1) % len(self.streams)
            if self.steps[k] < MAX_STEPS:
                ts = self.day_start_s + self.steps[k] * FREQ_S
                self.steps[k] += 1
                return ("POST", f"/v1/streams/{stream_name(self.streams[k])}/readings",
                        reading_body(ts), 1)
        self.exhausted += 1  # every stream of the lane has had its day: a forecast instead
        return None

    def _upload(self) -> Call:
        start = self.upload_next_s
        self.upload_next_s += UPLOAD_ROWS * FREQ_S
        rows = [{"ts": iso(start + i * FREQ_S), "value": value_at(start + i * FREQ_S)}
                for i in range(UPLOAD_ROWS)]
        return ("POST", f"/v1/series/{self.upload_series}/readings",
                json.dumps({"readings": rows}).encode(), UPLOAD_ROWS)


def upload_series(fleet_: Fleet, count: int) -> list[int]:
    """`count` empty series with no stream and no model, cloned from the prototype's row."""
    clone_fleet(fleet_.engine, tenant_id=fleet_.tenant_id, model_id=fleet_.model_id,
                series_id=fleet_.series_id, first=0, last=count - 1, with_streams=False,
                prefix=UPLOAD_PREFIX)
    with fleet_.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id FROM series WHERE tenant_id = :t AND name LIKE :like ORDER BY id"),
            {"t": fleet_.tenant_id, "like": f"{UPLOAD_PREFIX}%"}).all()
    return [row[0] for row in rows]


def run(fleet_: Fleet, connections: int, seconds: float, processes: int, uploads: list[int],
        upload_next_s: list[int], seed: int, shares: tuple[float, float] = (POST_SHARE, FORECAST_SHARE),
        ) -> tuple[Measured, dict[str, int]]:
    """One mixed run; the fleet's steps and the upload positions move on with it."""
    order = np.random.default_rng(seed).permutation(fleet_.size)
    lanes: list[Lane] = []
    for c in range(connections):
        mine = order[c::connections].tolist()
        lanes.append(MixedLane(seed=seed * 1000 + c, streams=mine,
                               steps=[int(fleet_.steps[i]) for i in mine],
                               fleet_size=fleet_.size, day_start_s=DAY_START_S,
                               upload_series=uploads[c],
                               upload_next_s=upload_next_s[c], post_share=shares[0],
                               forecast_share=shares[1]))
    measured, back = drive(fleet_.port, fleet_.key, fleet_.server_pid, lanes, processes, seconds)
    fleet_.resync()  # a reading that failed leaves its stream where it was
    counts = {"posts": 0, "forecasts": 0, "uploads": 0, "exhausted": 0}
    for lane in back:  # in the processes' order, not the lanes'
        assert isinstance(lane, MixedLane)
        fleet_.steps[lane.streams] = lane.steps
        upload_next_s[uploads.index(lane.upload_series)] = lane.upload_next_s
        for name in counts:
            counts[name] += getattr(lane, name)
    return measured, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int_list, default=[64])
    parser.add_argument("--streams", type=int, default=4000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--mix", type=lambda v: tuple(float(x) for x in v.split(",")),
                        default=(POST_SHARE, FORECAST_SHARE),
                        help="shares of posts and forecasts (uploads: the rest), e.g. 0.8,0.15")
    parser.add_argument("--processes", type=int_list, default=[1],
                        help="API processes of the server, one run of everything per number")
    parser.add_argument("--postgres-url", default=os.environ.get("STATECAST_TEST_DATABASE_URL"))
    args = parser.parse_args()
    rows: list[tuple[str, Measured, dict[str, int], int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes, db in product(args.processes, args.databases.split(",")):
            root = Path(tmp) / f"processes-{processes}"
            ((_, database),) = databases([db], root, args.postgres_url)
            name = f"{db} x{processes} proc"
            with database as url, fleet(name, url, root / db, args.streams, processes) as fleet_:
                fleet_.grow(args.streams)
                uploads = upload_series(fleet_, max(args.connections))
                # Uploads start after the measured day: they never touch the streams' day.
                upload_next_s = [DAY_START_S + 2 * 86_400] * len(uploads)
                for k, connections in enumerate(args.connections):
                    start = time.perf_counter()
                    measured, counts = run(fleet_, connections, args.seconds,
                                           args.client_processes, uploads, upload_next_s, k,
                                           args.mix)
                    rows.append((name, measured, counts, rss_bytes(fleet_.server_pid)))
                    print(f"[{name}] x{connections}: {measured.rps:.0f} req/s in "
                          f"{time.perf_counter() - start:.0f} s, {counts}, statuses "
                          f"{measured.statuses}, transport errors {measured.transport_errors}",
                          file=sys.stderr, flush=True)
                    for sample in measured.samples:
                        print(f"    {sample}", file=sys.stderr)
    print("| database, API processes | conns | requests | req/s | p50 ms | p99 ms | 5xx "
          "| other non-2xx | posts / forecasts / uploads | client CPU | server CPU | server RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m, counts, rss in rows:
        print(f"| {name} | {m.connections} | {m.requests:,} | {m.rps:,.0f} | {m.p50_ms:.1f} | "
              f"{m.p99_ms:.1f} | {m.status_5xx} | "
              f"{m.non_2xx - m.status_5xx + m.transport_errors} | "
              f"{counts['posts']:,} / {counts['forecasts']:,} / {counts['uploads']:,} | "
              f"{100 * m.client_cpu_s / m.wall_s:.0f}% | {100 * m.server_cpu_s / m.wall_s:.0f}% | "
              f"{rss / 2**20:,.0f} MiB |")
    print()
    for name, m, _, _ in rows:
        old = OLD_RPS[name.split()[0]]
        print(f"[{name}] x{m.connections}: {m.rps / old:.2f}x the old {old:.0f} req/s "
              f"(goal >= {LOAD_SPEEDUP_MIN:.0f}x: {'met' if m.rps >= LOAD_SPEEDUP_MIN * old else 'missed'})"
              f"; p99 {m.p99_ms:.0f} ms (goal < {LOAD_P99_MS_MAX:.0f}: "
              f"{'met' if m.p99_ms < LOAD_P99_MS_MAX else 'missed'}); {m.status_5xx} 5xx "
              f"(goal 0: {'met' if m.status_5xx == 0 else 'missed'})")
    for name, m, _, _ in rows:  # each run with more processes against one process
        db, processes = name.split()[0], int(name.split()[1][1:])
        one = next((r for r in rows if r[0] == f"{db} x1 proc" and r[1].connections
                    == m.connections), None)
        if processes > 1 and one is not None:
            print(f"[{name}] x{m.connections}: {m.rps / one[1].rps:.2f}x the req/s of one "
                  f"process (goal >= 1.6), p99 {m.p99_ms / one[1].p99_ms:.2f}x (goal <= 0.5)")


if __name__ == "__main__":
    main()
