"""What a fleet's bulk posts leave in the process through SQLite's prepared statements.

Each case runs in a fresh process on a fresh migrated SQLite file, with the server's engine
(`create_db_engine`: a pool of 5 connections, taken in turn): `--posts` times, the key lookups
of a bulk post of N one-reading streams (`app/db/stream_rows.py`: lock the streams, the stored
readings at 3 timestamps each, the fits' versions and numbers at 1.25 keys a stream), rolled
back. It prints the process's RSS growth over the posts, and the CPU time of a post's
statements (a first post apart, which prepares them). Cases:
  - sized to the post: statements of up to 10,000 rows, each post's rows in as few statements
    as the bound-variable limit allows (as before `SQLITE_CHUNK_ROWS`);
  - the same, without sqlite3's statement cache (`cached_statements=0`): the cache's share;
  - fixed shapes: at most `SQLITE_CHUNK_ROWS` rows a statement, a short one padded (now).

    python -m bench.statement_memory [--sizes 1000,10000] [--posts 10]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CASES = ("sized to the post", "sized to the post, no statement cache", "fixed shapes")
DAY_S = 1_700_006_400
POOLED = 5


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(case: str, n: int, posts: int) -> None:
    """One case in this process; prints the RSS growth in MiB."""
    from sqlalchemy import event

    from app.db import stream_rows
    from app.db.engine import create_db_engine
    from app.db.migrations import upgrade

    if case.startswith("sized"):
        stream_rows.SQLITE_CHUNK_ROWS = stream_rows.SQLITE_EXACT_ROWS = 10_000
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    engine = create_db_engine(url)
    if case.endswith("no statement cache"):
        @event.listens_for(engine, "do_connect")
        def _no_cache(_dialect: object, _record: object, _args: object,
                      params: dict[str, object]) -> None:
            params["cached_statements"] = 0
    series = np.arange(1, n + 1, dtype=np.int64)
    ts = np.full(n, DAY_S, dtype=np.int64)
    names = [f"meter-{i}" for i in range(n)]
    keys = [(int(s), DAY_S) for s in series] + [(int(s), DAY_S + 86_400) for s in series[:n // 4]]
    held = [engine.connect() for _ in range(POOLED)]  # the pool holds 5, as under 16 clients
    for connection in held:
        connection.close()
    before = rss_mib()
    cpu_s = 0.0
    for post in range(posts):
        if post == 1:
            cpu_s = time.process_time()
        with engine.connect() as connection, connection.begin() as transaction:
            stream_rows.lock_streams(connection, 1, names)
            stream_rows.stored_values_and_fit_versions(
                connection, np.tile(series, 3), np.concatenate([ts, ts - 1800, ts - 86_400]),
                1, keys)
            stream_rows.fit_cycles(connection, 1, keys)
            transaction.rollback()
    per_post_ms = 1000 * (time.process_time() - cpu_s) / max(1, posts - 1)
    print(f"{rss_mib() - before:.1f} MiB, {per_post_ms:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.size, args.posts)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"| case ({args.posts} posts): RSS growth, CPU a post | "
          + " | ".join(f"N = {n:,}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for case in CASES:
        grown = [subprocess.run(
            [sys.executable, "-m", "bench.statement_memory", "--case", case, "--size", str(n),
             "--posts", str(args.posts)], check=True, capture_output=True, text=True
        ).stdout.strip() for n in sizes]
        print(f"| {case} | " + " | ".join(grown) + " |")


if __name__ == "__main__":
    main()
