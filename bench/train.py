"""Training overhead of statecast against a plain Keras `fit` script, measured side by side.

Two comparisons, each of the same network on the same data of one synthetic half-hourly series of
20,000 readings (the raw series with calendar inputs, MSE loss, 4 epochs, every spec field fixed
below), each run in its own subprocess so that peak memory (ru_maxrss) is its own:

- window: LSTM(32) -> Dense(1) on windows of 48 readings, batch 32. statecast: `train` with
  windows built per batch by tf.data, early stopping, progress and cancel callbacks, then
  evaluation and conformal calibration; plain: the windows materialised as one
  (N, window, features) array and `model.fit`.
- stream: a stateful LSTM(32) -> Dense(1) at every step, chunks of 48 readings dealt into lanes.
  statecast: `train` of a stream model (state carried and reset per lane, a stateless twin for
  validation); plain: the training part cut into the same number of lanes and chunks by hand,
  and `model.fit(batch_size=lanes, shuffle=False)` with the states reset each epoch.

Seconds per epoch are the median over epochs after the first (which traces the graph); the two
sides alternate `--repeats` times and the best run of each is compared, since the machine is
shared.

    .venv/bin/python -m bench.train            # prints a table and the ratios per comparison
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
from typing import Any

import numpy as np

from bench.goals import TRAIN_MEMORY_RATIO_MAX, TRAIN_TIME_RATIO_MAX

READINGS = 20_000
FREQ = "30min"
WINDOW = 48
UNITS = 32
EPOCHS = 4
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
FRACTION = 0.1  # validation and test parts, each
SEED = 0
REPEATS = 2
COMPARISONS = ("window", "stream")
# Every field that decides the trained network, its data and its schedule: a default that
# changes must not change what this compares.
SPEC_FIELDS: dict[str, Any] = {
    "cell": "lstm", "units": UNITS, "layers": 1, "dropout": 0.0, "bidirectional": False,
    "horizon": 1, "calendar": True, "deseasonalize": "none", "loss": "mse", "epochs": EPOCHS,
    "patience": EPOCHS, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "seed": SEED,
    "validation_fraction": FRACTION, "test_fraction": FRACTION, "auto": False,
}
WINDOW_SPEC = {**SPEC_FIELDS, "stateful": False, "window": WINDOW}
STREAM_SPEC = {**SPEC_FIELDS, "stateful": True, "window": WINDOW, "chunk": WINDOW}


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


def _series() -> Any:
    import pandas as pd

    from app.ml.data import SeriesData

    timestamps = pd.date_range("2024-01-01", periods=READINGS, freq=FREQ)
    return SeriesData(synthetic_values(READINGS), timestamps, FREQ, "bench")


def run_statecast(comparison: str) -> dict[str, float]:
    from app.ml import windows
    from app.ml.spec import ModelSpec
    from app.ml.training import EpochProgress, prepare, train

    series = _series()
    spec = ModelSpec(**(WINDOW_SPEC if comparison == "window" else STREAM_SPEC))
    layouts: list[windows.StatefulLayout] = []
    if comparison == "window":
        _, (prepared,) = prepare(spec, [series])
        train_samples = len(windows.window_ends(prepared.segments, prepared.split, "train",
                                                window=WINDOW, horizon=1))
    else:
        # Records the lanes statecast lays out, so that the plain run uses as many.
        lay_out = windows.stateful_layout

        def recording(*args: Any, **kwargs: Any) -> windows.StatefulLayout:
            layouts.append(lay_out(*args, **kwargs))
            return layouts[-1]

        windows.stateful_layout = recording
    elapsed: list[float] = []

    def on_epoch(progress: EpochProgress) -> None:
        elapsed.append(progress.elapsed_s)

    start = time.perf_counter()
    trained = train(spec, [series], on_epoch=on_epoch)
    per_epoch = np.diff([0.0, *elapsed])
    result = {
        "s_per_epoch": float(np.median(per_epoch[1:])),
        "first_epoch_s": float(per_epoch[0]),
        "total_s": time.perf_counter() - start,
        "peak_rss_mib": _peak_rss_mib(),
        "validation_origins": trained.metrics["validation_origins"],
    }
    if layouts:
        layout = layouts[0]
        result.update(lanes=layout.lanes, batches=layout.batches,
                      train_samples=int(layout.lengths.sum()))
    else:
        result.update(train_samples=train_samples)
    return result


def _scaled_table() -> tuple[np.ndarray, np.ndarray, int, int]:
    """The series scaled on its training part beside its calendar inputs, as statecast reads it:
    (scaled, table (N, 5), validation start, test start)."""
    import pandas as pd

    values = synthetic_values(READINGS)
    n = len(values)
    test_start = n - round(FRACTION * n)
    val_start = test_start - round(FRACTION * n)
    scaled = values / np.std(values[:val_start])
    ts = pd.date_range("2024-01-01", periods=n, freq=FREQ).asi8
    day = 2 * np.pi * (ts % 86_400e9) / 86_400e9
    week = 2 * np.pi * ((ts - 4 * 86_400e9) % (7 * 86_400e9)) / (7 * 86_400e9)
    table = np.stack([scaled, np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=1)
    return scaled, table, val_start, test_start


class _EpochTimer:
    """A Keras callback (built lazily: keras is imported only in the subprocess)."""

    @staticmethod
    def make(times: list[float]) -> Any:
        import keras

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                times.append(time.perf_counter() - self.start)

        return Timer()


def run_plain_window() -> dict[str, float]:
    """What one would write by hand: materialise every window, then `model.fit`."""
    import keras
    from numpy.lib.stride_tricks import sliding_window_view

    keras.utils.set_random_seed(SEED)
    scaled, table, val_start, test_start = _scaled_table()

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
        [keras.Input((None, table.shape[1])), keras.layers.LSTM(UNITS), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
    times: list[float] = []
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=EPOCHS,
              validation_data=(x_val, y_val), callbacks=[_EpochTimer.make(times)], verbose=0)
    return {
        "s_per_epoch": float(np.median(times[1:])),
        "first_epoch_s": times[0],
        "total_s": time.perf_counter() - start,
        "peak_rss_mib": _peak_rss_mib(),
        "train_samples": len(x_train),
        "validation_origins": len(x_val),
    }


def run_plain_stream(lanes: int) -> dict[str, float]:
    """What one would write by hand for a stateful model: the series' changes cut into chunks,
    chunk i in lane i // batches, then `fit(batch_size=lanes, shuffle=False)`."""
    import keras

    keras.utils.set_random_seed(SEED)
    scaled, table, val_start, test_start = _scaled_table()
    inputs = table.astype(np.float32)
    inputs[:, 0] = np.diff(scaled, prepend=scaled[0])
    targets = np.append(np.diff(scaled), np.nan).astype(np.float32)

    def laid_out(first: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chunk_starts = np.arange(first, stop, WINDOW)
        batches = -(-len(chunk_starts) // lanes)
        padded = np.full(lanes * batches, -1)
        padded[: len(chunk_starts)] = chunk_starts
        # Row b * lanes + l of the arrays is chunk l * batches + b: each lane reads on in order.
        order = padded.reshape(lanes, batches).T.reshape(-1)
        steps = order[:, None] + np.arange(WINDOW)[None, :]
        inside = (order[:, None] >= 0) & (steps < stop)
        index = np.where(inside, steps, 0)
        x = np.where(inside[..., None], inputs[index], 0.0).astype(np.float32)
        y = np.nan_to_num(targets[index])[..., None].astype(np.float32)
        return x, y, inside.astype(np.float32)

    x, y, weights = laid_out(0, val_start - 1)
    x_val, y_val, val_weights = laid_out(val_start - 1, test_start - 1)
    model = keras.Sequential([
        keras.Input(batch_shape=(lanes, None, inputs.shape[1])),
        keras.layers.LSTM(UNITS, stateful=True, return_sequences=True),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")

    class ResetStates(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.reset()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.reset()

        def reset(self) -> None:
            for layer in self.model.layers:
                if isinstance(layer, keras.layers.RNN):
                    layer.reset_states()

    times: list[float] = []
    start = time.perf_counter()
    model.fit(x, y, sample_weight=weights, batch_size=lanes, epochs=EPOCHS, shuffle=False,
              validation_data=(x_val, y_val, val_weights), validation_batch_size=lanes,
              callbacks=[ResetStates(), _EpochTimer.make(times)], verbose=0)
    return {
        "s_per_epoch": float(np.median(times[1:])),
        "first_epoch_s": times[0],
        "total_s": time.perf_counter() - start,
        "peak_rss_mib": _peak_rss_mib(),
        "lanes": lanes,
        "batches": len(x) // lanes,
        "train_samples": int(weights.sum()),
        "validation_origins": int(val_weights.sum()),
    }


def _run(which: str, comparison: str, lanes: int, root: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "bench.train", "--run", which, "--comparison", comparison,
               "--lanes", str(lanes)]
    out = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{which} {comparison} run failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def compare(comparison: str, repeats: int, root: Path) -> None:
    runs: dict[str, list[dict[str, Any]]] = {"statecast": [], "plain": []}
    lanes = 0
    # Alternate the two so that load from other processes hits both alike; keep each one's best.
    # statecast runs first: the plain stream run lays out as many lanes as it did.
    for _ in range(repeats):
        for which in runs:
            runs[which].append(_run(which, comparison, lanes, root))
            lanes = lanes or int(runs["statecast"][0].get("lanes", 0))
    plain, ours = (min(runs[w], key=lambda x: x["s_per_epoch"]) for w in ("plain", "statecast"))
    shape = (f"window {WINDOW}, batch {BATCH_SIZE}" if comparison == "window" else
             f"stateful, chunks of {WINDOW} in {lanes} lanes")
    print(f"\n== {comparison}: {READINGS} readings, LSTM({UNITS}) -> Dense(1), {shape}, "
          f"{EPOCHS} epochs")
    for name, each in runs.items():
        print(f"{name} s/epoch of each run: {[round(x['s_per_epoch'], 3) for x in each]}")
    for name, r in (("plain", plain), ("statecast", ours)):
        laid = f", {r['lanes']} lanes x {r['batches']} batches" if "lanes" in r else ""
        print(f"{name}: {r['train_samples']} training samples{laid}, "
              f"{r['validation_origins']} validation origins")
    print(f"{'':10} {'s/epoch':>8} {'1st epoch s':>12} {'peak RSS MiB':>13}")
    for name, r in (("plain", plain), ("statecast", ours)):
        print(f"{name:10} {r['s_per_epoch']:8.3f} {r['first_epoch_s']:12.3f} {r['peak_rss_mib']:13.0f}")
    time_ratio = ours["s_per_epoch"] / plain["s_per_epoch"]
    memory_ratio = ours["peak_rss_mib"] / plain["peak_rss_mib"]
    print(f"[{comparison}] time per epoch ratio {time_ratio:.3f} (goal <= {TRAIN_TIME_RATIO_MAX})")
    print(f"[{comparison}] peak memory ratio    {memory_ratio:.3f} (goal <= {TRAIN_MEMORY_RATIO_MAX})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--comparison", choices=COMPARISONS, action="append",
                        help="run only this comparison (repeatable; default: both)")
    parser.add_argument("--run", choices=["statecast", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--lanes", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    comparisons = args.comparison or list(COMPARISONS)
    if args.run:
        (comparison,) = comparisons
        if args.run == "statecast":
            result = run_statecast(comparison)
        else:
            result = run_plain_window() if comparison == "window" else run_plain_stream(args.lanes)
        print(json.dumps(result))
        return
    root = Path(__file__).resolve().parents[1]
    for comparison in comparisons:
        compare(comparison, args.repeats, root)


if __name__ == "__main__":
    main()
