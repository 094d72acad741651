"""What seasonal fits made a day ahead cost in accuracy, on Taylor's half-hourly demand.

A deseasonalised stream model reads each reading of day D against a seasonal fit. Made inline at
the day turn, that fit read the readings before D; made ahead by the workers, it reads the readings
before D-1, shifted a day (`FIT_LEAD_DAYS`, app/ml/stream_seasonal.py). One stream model is
trained (spec pinned below, with fits made ahead, as the service trains), then the test part is
replayed reading by reading with each cutoff, side by side:

- one step: the forecast made after each reading, judged against the next reading;
- a day ahead: from every midnight of the test part, 48 half-hours (the protocol of
  bench/accuracy.py).

MASE divides by the in-sample MAE of the weekly seasonal naive on the training part, as in
bench/accuracy.py; the cost is MASE with fits made ahead over MASE with the day's own fit, minus 1.

    python -m bench.fit_cutoff [CSV] [--epochs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

DEFAULT_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "taylor_ew_halfhourly.csv"
TEST_DAYS = 14
GOAL_COST = 0.02
# The stream model the fleet benchmark serves (bench/fleet.py), trained for longer.
SPEC = {"cell": "gru", "units": 16, "stateful": True, "horizon": 48, "chunk": 96,
        "deseasonalize": "mstl", "batch_size": 32, "patience": 5}


def main(argv: list[str] | None = None) -> int:
    from app.ml.artifacts import save_artifacts
    from app.ml.data import SeriesData
    from app.ml.forecaster import Forecaster
    from app.ml.spec import ModelSpec
    from app.ml.stream_seasonal import FIT_LEAD_DAYS, HistorySeasonal
    from app.ml.training import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    frame = pd.read_csv(args.csv)
    stamps = pd.DatetimeIndex(pd.to_datetime(frame.iloc[:, 0]))
    values = frame.iloc[:, 1].to_numpy(dtype=np.float64)
    day = int(pd.Timedelta("1D") / (stamps[1] - stamps[0]))
    test_start = len(values) - TEST_DAYS * day
    train_part = values[:test_start]
    scale = float(np.mean(np.abs(train_part[7 * day:] - train_part[:-7 * day])))

    spec = ModelSpec(**SPEC, epochs=args.epochs, seed=args.seed)
    print(f"training {SPEC} epochs={args.epochs} seed={args.seed} on {test_start} readings",
          flush=True)
    trained = train(spec, [SeriesData(values=train_part, timestamps=stamps[:test_start],
                                      freq="30min", name="taylor")])
    with tempfile.TemporaryDirectory() as tmp:
        forecaster = Forecaster.load(save_artifacts(trained, Path(tmp) / "model"))

    rows = []
    for lead in (0, FIT_LEAD_DAYS):
        source = HistorySeasonal(values, stamps, forecaster.seasonal_fitter, lead_days=lead)
        warm_from = test_start - forecaster.stream_warm_steps
        state = forecaster.warm(values[warm_from:test_start], stamps[warm_from:test_start],
                                forecaster.initial_state("taylor"), seasonal=source)
        one_step, day_ahead = [], []
        for d in range(TEST_DAYS):
            origin = test_start + d * day
            if origin + day <= len(values):
                forecast = forecaster.forecast_from_state(state, day, seasonal=source)
                day_ahead.append(np.abs(forecast.mean - values[origin:origin + day]))
            state, ahead = forecaster.advance(values[origin:origin + day],
                                              stamps[origin:origin + day], state, seasonal=source)
            judged = values[origin + 1:origin + day + 1]
            one_step.append(np.abs(ahead[:len(judged)] - judged))
        rows.append((lead, float(np.nanmean(np.concatenate(one_step))) / scale,
                     float(np.mean(np.concatenate(day_ahead))) / scale))

    print(f"\n{'fit cutoff':<34} {'one-step MASE':>14} {'day-ahead MASE':>15}")
    names = {0: "the day's own fit (inline)", FIT_LEAD_DAYS: "made a day ahead (workers)"}
    for lead, one, ahead in rows:
        print(f"{names[lead]:<34} {one:>14.4f} {ahead:>15.4f}")
    (_, one0, ahead0), (_, one1, ahead1) = rows
    cost_one, cost_ahead = one1 / one0 - 1, ahead1 / ahead0 - 1
    print(f"{'cost of fits made ahead':<34} {cost_one:>+13.2%} {cost_ahead:>+14.2%}   "
          f"(goal at most {GOAL_COST:+.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
