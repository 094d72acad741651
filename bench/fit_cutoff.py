"""What seasonal fits made a day ahead cost in accuracy, on Taylor's half-hourly demand.

A deseasonalised stream model reads each reading of day D against a seasonal fit. Made inline at
the day turn, that fit read the readings before D; made ahead by the workers, it reads the readings
up to a lead before D, shifted to D (`FIT_LEAD_S`, app/ml/stream_seasonal.py). One stream model is
trained (spec pinned below, as the service trains: it learns against one fit of its training
part, so the lead does not change it), then the test part is replayed reading by reading with
each lead, side by side:

- one step: the forecast made after each reading, judged against the next reading;
- a day ahead: from every midnight of the test part, 48 half-hours (the protocol of
  bench/accuracy.py).

MASE divides by the in-sample MAE of the weekly seasonal naive on the training part, as in
bench/accuracy.py; the cost is MASE with fits made ahead over MASE with the day's own fit (lead 0), minus 1.

    python -m bench.fit_cutoff [CSV] [--epochs 20] [--seed 0] [--leads-h 0,1,3,6,12,24]
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

from bench.goals import FIT_AHEAD_MASE_COST_MAX

DEFAULT_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "taylor_ew_halfhourly.csv"
TEST_DAYS = 14
# The stream model the fleet benchmark serves (bench/fleet.py), trained for longer.
SPEC = {"cell": "gru", "units": 16, "stateful": True, "horizon": 48, "chunk": 96,
        "deseasonalize": "mstl", "batch_size": 32, "patience": 5}


def main(argv: list[str] | None = None) -> int:
    from app.ml.artifacts import save_artifacts
    from app.ml.data import SeriesData
    from app.ml.forecaster import Forecaster
    from app.ml.spec import ModelSpec
    from app.ml.stream_seasonal import FIT_LEAD_S, HistorySeasonal
    from app.ml.training import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leads-h", default="0,1,3,6,12,24",
                        help="fit leads to compare, in hours before local midnight (0: inline)")
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

    leads_s = sorted({0, *(int(float(h) * 3600) for h in args.leads_h.split(","))})
    rows = []
    for lead_s in leads_s:
        source = HistorySeasonal(values, stamps, forecaster.seasonal_fitter, lead_s=lead_s)
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
        rows.append((lead_s, float(np.nanmean(np.concatenate(one_step))) / scale,
                     float(np.mean(np.concatenate(day_ahead))) / scale))

    print(f"\n{'fit lead (h before the day)':<30} {'one-step MASE':>14} {'cost':>8} "
          f"{'day-ahead MASE':>15} {'cost':>8}")
    _, one0, ahead0 = rows[0]
    for lead_s, one, ahead in rows:
        name = f"{lead_s / 3600:g}" + (" (inline)" if lead_s == 0 else "") + (
            " (the service's)" if lead_s == FIT_LEAD_S else "")
        print(f"{name:<30} {one:>14.4f} {one / one0 - 1:>+8.2%} {ahead:>15.4f} "
              f"{ahead / ahead0 - 1:>+8.2%}")
    print(f"goal: a cost of at most {FIT_AHEAD_MASE_COST_MAX:+.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
