"""Training overhead of statecast against a plain Keras `fit` script, measured side by side.

Both train the same network (LSTM -> Dense) on the same windows of one synthetic half-hourly
series of 20,000 readings, each in its own subprocess so that peak memory (ru_maxrss) is its own:

- statecast: `app.ml.training.train` (windows built per batch by tf.data, early stopping,
  progress and cancel callbacks, then evaluation and conformal calibration);
- plain: the windows materialised as one (N, window, features) array and `model.fit`.

Seconds per epoch are the median over epochs after the first (which traces the graph); the two
scripts alternate `--repeats` times and the best run of each is compared, since the machine is
shared.

    PYTHONPATH=. python bench/train.py            # prints a table and the ratios
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

READINGS = 20_000
FREQ = "30min"
WINDOW = 48
UNITS = 32
EPOCHS = 4
BATCH_SIZE = 32
SEED = 0
REPEATS = 2
TIME_RATIO_GOAL = 1.15
MEMORY_RATIO_GOAL = 1.25


def synthetic_values(n: int) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(SEED)
    return (
        1000
        + 200 * np.sin(2 * np.pi * t / 48)
        + 80 * np.sin(2 * np.pi * t / 336)
        + 0.01 * t
        + rng.normal(0, 20, n)
    )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_statecast(args: argparse.Namespace) -> dict[str, float]:
    import pandas as pd

    from app.ml.data import SeriesData
    from app.ml.spec import ModelSpec
    from app.ml.training import EpochProgress, prepare, train
    from app.ml.windows import window_ends

    timestamps = pd.date_range("2024-01-01", periods=args.readings, freq=FREQ)
    series = SeriesData(synthetic_values(args.readings), timestamps, FREQ, "bench")
    spec = ModelSpec(
        units=args.units,
        window=WINDOW,
        epochs=args.epochs,
        patience=args.epochs,
        batch_size=BATCH_SIZE,
        seed=SEED,
    )
    _, (prepared,) = prepare(spec, [series])
    train_windows = len(window_ends(prepared.segments, prepared.split, "train", window=WINDOW, horizon=1))
    elapsed: list[float] = []

    def on_epoch(progress: EpochProgress) -> None:
        elapsed.append(progress.elapsed_s)

    start = time.perf_counter()
    trained = train(spec, [series], on_epoch=on_epoch)
    per_epoch = np.diff([0.0, *elapsed])
    return {
        "s_per_epoch": float(np.median(per_epoch[1:])),
        "first_epoch_s": float(per_epoch[0]),
        "total_s": time.perf_counter() - start,
        "peak_rss_mib": _peak_rss_mib(),
        "train_windows": train_windows,
        "validation_windows": trained.metrics["validation_origins"],
    }


def run_plain(args: argparse.Namespace) -> dict[str, float]:
    """What one would write by hand: materialise every window, then `model.fit`."""
    import keras
    import pandas as pd
    from numpy.lib.stride_tricks import sliding_window_view

    keras.utils.set_random_seed(SEED)
    values = synthetic_values(args.readings)
    n = len(values)
    # The same chronological split and scaling as statecast: 10% test, 10% validation.
    test_start = n - round(0.1 * n)
    val_start = test_start - round(0.1 * n)
    scaled = values / np.std(values[:val_start])
    ts = pd.date_range("2024-01-01", periods=n, freq=FREQ).asi8
    day = 2 * np.pi * (ts % 86_400e9) / 86_400e9
    week = 2 * np.pi * ((ts - 4 * 86_400e9) % (7 * 86_400e9)) / (7 * 86_400e9)
    table = np.stack([scaled, np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=1)

    def windows(first_end: int, last_end: int) -> tuple[np.ndarray, np.ndarray]:
        ends = np.arange(first_end, last_end + 1)
        x = sliding_window_view(table, WINDOW, axis=0)[ends - WINDOW + 1].transpose(0, 2, 1)
        x = x.astype(np.float32)  # the materialised (N, window, features) copy
        x[:, :, 0] -= scaled[ends, None].astype(np.float32)
        y = (scaled[ends + 1] - scaled[ends])[:, None].astype(np.float32)
        return x, y

    x_train, y_train = windows(WINDOW - 1, val_start - 2)
    x_val, y_val = windows(val_start - 1, test_start - 2)

    model = keras.Sequential(
        [keras.Input((None, table.shape[1])), keras.layers.LSTM(args.units), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter() - self.start)

    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=args.epochs,
        validation_data=(x_val, y_val),
        callbacks=[Timer()],
        verbose=0,
    )
    return {
        "s_per_epoch": float(np.median(times[1:])),
        "first_epoch_s": times[0],
        "total_s": time.perf_counter() - start,
        "peak_rss_mib": _peak_rss_mib(),
        "train_windows": len(x_train),
        "validation_windows": len(x_val),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=READINGS)
    parser.add_argument("--units", type=int, default=UNITS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--run", choices=["statecast", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        result = run_statecast(args) if args.run == "statecast" else run_plain(args)
        print(json.dumps(result))
        return

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "statecast": []}
    # Alternate the two so that load from other processes hits both alike; keep each one's best.
    for _ in range(args.repeats):
        for which in runs:
            command = [sys.executable, __file__, "--run", which, *sys.argv[1:]]
            out = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{which} run failed:\n{out.stderr[-4000:]}")
            runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
    plain, ours = (min(r, key=lambda x: x["s_per_epoch"]) for r in runs.values())
    for name, r in runs.items():
        print(f"{name} s/epoch of each run: {[round(x['s_per_epoch'], 3) for x in r]}")

    print(
        f"{args.readings} readings, window {WINDOW}, LSTM({args.units}) -> Dense(1), "
        f"batch {BATCH_SIZE}, {args.epochs} epochs"
    )
    for name, r in (("plain", plain), ("statecast", ours)):
        print(f"{name}: {r['train_windows']} training and {r['validation_windows']} validation windows")
    print(f"{'':10} {'s/epoch':>8} {'1st epoch s':>12} {'peak RSS MiB':>13}")
    for name, r in (("plain", plain), ("statecast", ours)):
        print(f"{name:10} {r['s_per_epoch']:8.3f} {r['first_epoch_s']:12.3f} {r['peak_rss_mib']:13.0f}")
    time_ratio = ours["s_per_epoch"] / plain["s_per_epoch"]
    memory_ratio = ours["peak_rss_mib"] / plain["peak_rss_mib"]
    print(f"time per epoch ratio {time_ratio:.3f} (goal <= {TIME_RATIO_GOAL})")
    print(f"peak memory ratio    {memory_ratio:.3f} (goal <= {MEMORY_RATIO_GOAL})")


if __name__ == "__main__":
    main()
