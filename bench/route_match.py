"""Time FastAPI takes to find the stream post's route, with and without `app.api.prefixed`.

Both apps are built by `create_app`, the second with the prefix check left out; their route
lists are searched for `POST /v1/streams/{id}/readings` the way Starlette's router does,
alternately, so that load from other processes hits both alike.

    .venv/bin/python -m bench.route_match [--rounds 2000]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match

import app.main as main
from app.api.prefixed import prefixed
from app.config import Settings

PATH = "/v1/streams/live/readings"


def find_route_us(app: FastAPI) -> float:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": PATH, "root_path": "",
                             "headers": [], "query_string": b""}
    start = time.perf_counter_ns()
    for route in app.router.routes:
        if route.matches(scope)[0] == Match.FULL:
            return (time.perf_counter_ns() - start) / 1000
    raise AssertionError(f"no route for POST {PATH}")


def main_() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'unused.db'}")
        apps = {"with": main.create_app(settings)}
        main.prefixed = lambda router: router
        try:
            apps["without"] = main.create_app(settings)
        finally:
            main.prefixed = prefixed
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            samples[name].append(find_route_us(app))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, median in medians.items():
        print(f"{name:8} the prefix check: median {median:6.1f} µs to find POST {PATH}")
    print(f"without / with = {medians['without'] / medians['with']:.2f} ({args.rounds} rounds)")


if __name__ == "__main__":
    main_()
