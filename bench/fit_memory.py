"""What a seasonal fit costs the API process's memory, stored as JSON lists against float32 binary.

A stream post reads its streams' fits: from the process's cache, or, cold, from the database in
one query per batch (a fleet's bulk post of 10,000 streams at the day turn reads 10,000). Side by
side, with tracemalloc, for one half-hourly fit of Taylor's demand (periods of 48 and 336, as the
fleet benchmark's model fits) in each stored form:

- stored: the bytes of one fit's value;
- cold read of a bulk post: the peak Python memory of decoding `--fits` fits at once, as
  `stream_rows.fit_cycles` does with the rows of one query (their values held, all decoded);
- cached: the bytes a cache of `--cached` decoded fits holds (the count the cache kept before it
  was bounded by bytes), and how many fits the byte bound (`seasonal_fit_cache_bytes`) keeps.

    python -m bench.fit_memory [CSV] [--fits 10000] [--cached 20000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

DEFAULT_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "taylor_ew_halfhourly.csv"
STEPS_PER_DAY = 48
FIT_DAYS = 12 * 7  # the fit reads at most 12 weeks (`FIT_SEASONS`)


def traced(make: Callable[[], Any]) -> tuple[Any, int, int]:
    """What `make` returns, the bytes it still holds, and its peak, by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    made = make()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return made, held - base, peak - base


def main(argv: list[str] | None = None) -> int:
    from app.config import Settings
    from app.ml.seasonal import SeasonalConfig, SeasonalCycles, SeasonalFitter, decode_cycles, encode_cycles
    from app.streams.seasonal_fits import FitCache

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--fits", type=int, default=10_000)
    parser.add_argument("--cached", type=int, default=20_000)
    args = parser.parse_args(argv)

    values = pd.read_csv(args.csv).iloc[:, 1].to_numpy(dtype=np.float64)[: FIT_DAYS * STEPS_PER_DAY]
    fit = SeasonalFitter(SeasonalConfig((STEPS_PER_DAY, 7 * STEPS_PER_DAY), len(values),
                                        float(STEPS_PER_DAY))).cycles_before(values, len(values))
    old_fit = SeasonalCycles(tuple(c.astype(np.float64) for c in fit.cycles))
    # Each stored value is its own object, as a query's rows are.
    stored = {"JSON lists (before)": [orjson.dumps([c.tolist() for c in old_fit.cycles])
                                      for _ in range(args.fits)],
              "float32 binary (now)": [encode_cycles(fit) for _ in range(args.fits)]}

    def read_old(rows: list[bytes]) -> dict[int, SeasonalCycles]:
        parsed = {i: orjson.loads(row) for i, row in enumerate(rows)}  # what fit_cycles returned
        return {i: SeasonalCycles(tuple(np.asarray(c, dtype=np.float64) for c in cycles))
                for i, cycles in parsed.items()}

    def read_new(rows: list[bytes]) -> dict[int, SeasonalCycles]:
        return {i: decode_cycles(row) for i, row in enumerate(rows)}

    readers = {"JSON lists (before)": read_old, "float32 binary (now)": read_new}
    budget = Settings().seasonal_fit_cache_bytes
    print(f"{'stored form':<22} {'stored B/fit':>12} {'cold read of ' + str(args.fits):>18} "
          f"{'cached ' + str(args.cached):>14} {'B/fit cached':>13} {'fits in the bound':>18}")
    for name, rows in stored.items():
        read = readers[name]
        _, _, peak = traced(lambda rows=rows, read=read: read(rows))
        one = read(rows[:1])[0]

        def fill(one: SeasonalCycles = one, rows: list[bytes] = rows,
                 read: Callable[..., Any] = read) -> dict[tuple[int, int, int, int], SeasonalCycles]:
            cache: dict[tuple[int, int, int, int], SeasonalCycles] = {}
            for i in range(args.cached):
                # A fresh value per fit, as each comes from the database: a decoded binary fit
                # keeps its value (its arrays are views of it).
                cache[(1, i, 1_706_745_600, i)] = read([bytes(bytearray(rows[i % len(rows)]))])[0]
            return cache

        cache, held, _ = traced(fill)
        bounded = FitCache(budget)
        for key, value in cache.items():
            bounded.put(key, value)
        print(f"{name:<22} {len(rows[0]):>12,} {peak / 2**20:>15,.1f} MiB {held / 2**20:>10,.1f} MiB "
              f"{held / args.cached:>13,.0f} {len(bounded):>18,}")
        del cache
    print(f"(the byte bound: seasonal_fit_cache_bytes = {budget / 2**20:g} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
