"""Accuracy on a real series, side by side with classical baselines: writes docs/accuracy.md.

Protocol (issue 5): test = the last 14 days, validation = the 7 days before, train = the rest.
Origins at every midnight of the test period, each forecasting one day (48 half-hours) from all
data before it. MASE divides by the in-sample MAE of the weekly seasonal naive on the train part.
Then the covariate benchmark of issue 17 on BigDEAL (`bench/bigdeal.py`).

    PYTHONPATH=. python bench/accuracy.py [CSV] [--seeds 3] [--auto-budget-s 90] [--bigdeal-seeds 1]

Needs the `bench` extra (statsforecast, mlforecast, lightgbm, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

DEFAULT_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "taylor_ew_halfhourly.csv"
DOCS = Path(__file__).resolve().parents[1] / "docs"
TEST_DAYS, VALIDATION_DAYS = 14, 7
LEVELS = (80, 95)
# Wall time of `Forecaster.forecast` (one day ahead from the full history) per call, in ms.
SERVING_MS: dict[str, list[float]] = {
    "first of the day (seasonal fit)": [],
    "again the same day (fit cached)": [],
}


class Protocol:
    def __init__(self, path: Path) -> None:
        frame = pd.read_csv(path)
        self.timestamps = pd.DatetimeIndex(pd.to_datetime(frame.iloc[:, 0]))
        self.values = frame.iloc[:, 1].to_numpy(dtype=np.float64)
        step = self.timestamps[1] - self.timestamps[0]
        self.freq = pd.tseries.frequencies.to_offset(step).freqstr
        self.day = int(pd.Timedelta("1D") / step)
        self.week = 7 * self.day
        n = len(self.values)
        self.test_start = n - TEST_DAYS * self.day
        self.val_start = self.test_start - VALIDATION_DAYS * self.day
        self.origins = [self.test_start + d * self.day for d in range(TEST_DAYS)]
        train = self.values[: self.val_start]
        self.mase_scale = float(np.mean(np.abs(train[self.week :] - train[: -self.week])))
        self.actual = np.stack([self.values[o : o + self.day] for o in self.origins])

    def scores(self, forecast: np.ndarray) -> dict[str, float]:
        error = forecast - self.actual
        return {
            "MAE": float(np.mean(np.abs(error))),
            "RMSE": float(np.sqrt(np.mean(error**2))),
            "MAPE": float(100 * np.mean(np.abs(error) / np.abs(self.actual))),
            "MASE": float(np.mean(np.abs(error)) / self.mase_scale),
        }


def seasonal_naive(p: Protocol, lag: int) -> np.ndarray:
    steps = np.arange(p.day)
    return np.stack([p.values[o - lag + steps % lag] for o in p.origins])


def mstl_autoets(p: Protocol) -> np.ndarray:
    from statsforecast.models import MSTL, AutoETS

    out = []
    for o in p.origins:
        model = MSTL(season_length=[p.day, p.week], trend_forecaster=AutoETS(model="ZZN"))
        out.append(model.forecast(y=p.values[:o], h=p.day)["mean"])
    return np.stack(out)


def mstl_last_remainder(p: Protocol) -> np.ndarray:
    """What a deseasonalised stream model forecasts before it learns anything: the seasonal fit
    made before the origin's day, plus the last deseasonalised reading."""
    from app.ml.seasonal import FIT_SEASONS, SeasonalConfig, SeasonalFitter, candidate_periods
    from app.ml.stream_seasonal import HistorySeasonal, seasonal_ahead

    periods = candidate_periods(p.day)
    fitter = SeasonalFitter(SeasonalConfig(periods, FIT_SEASONS * max(periods), p.day))
    source = HistorySeasonal(p.values, p.timestamps, fitter)
    last = np.array(p.origins) - 1
    step = p.timestamps[1] - p.timestamps[0]
    ahead, _ = seasonal_ahead(source, p.timestamps[last], step, p.day, p.day)
    return p.values[last][:, None] + ahead


def live_stream(p: Protocol, seed: int) -> dict[str, float]:
    """A stream on the default model over the test part, one reading per step, as a client posts
    them: each reading judged against the one-step forecast made before it, and against the
    weekly seasonal naive's."""
    from app.ml.artifacts import save_artifacts
    from app.ml.data import SeriesData
    from app.ml.forecaster import Forecaster
    from app.ml.spec import ModelSpec
    from app.ml.training import train

    n = len(p.values)
    spec = ModelSpec(
        seed=seed, validation_fraction=VALIDATION_DAYS * p.day / n, test_fraction=TEST_DAYS * p.day / n
    )
    trained = train(spec, [SeriesData(p.values, p.timestamps, p.freq, "series")])
    with tempfile.TemporaryDirectory() as root:
        forecaster = Forecaster.load(save_artifacts(trained, Path(root) / "model"))
    source = forecaster.history_seasonal(p.values, p.timestamps) if forecaster.needs_seasonal else None
    warm_from = p.test_start - forecaster.stream_warm_steps
    state = forecaster.warm(
        p.values[warm_from : p.test_start],
        p.timestamps[warm_from : p.test_start],
        forecaster.initial_state(),
        seasonal=source,
    )
    errors, seconds = [], []
    for t in range(p.test_start, n):
        expected = forecaster.forecast_from_state(state, 1, (), seasonal=source).mean[0]
        errors.append(abs(p.values[t] - expected))
        began = time.perf_counter()
        state = forecaster.step(state, float(p.values[t]), p.timestamps[t], seasonal=source)
        seconds.append(time.perf_counter() - began)
    actual = p.values[p.test_start :]
    last = p.values[p.test_start - 1 : n - 1]
    naive = np.abs(actual - p.values[p.test_start - p.week : n - p.week])
    # The weekly naive at the same lead: last week's change onto the last reading.
    week_ago = p.values[p.test_start - p.week - 1 : n - p.week]
    week_change = np.diff(week_ago)
    return {
        "model_mae": float(np.mean(errors)),
        "naive_mae": float(np.mean(naive)),
        "persistence_mae": float(np.mean(np.abs(actual - last))),
        "naive_one_step_mae": float(np.mean(np.abs(actual - last - week_change))),
        "step_ms": 1000 * float(np.median(seconds)),
        "state_bytes": float(len(json.dumps(state))),
    }


def book_recipe(p: Protocol, seed: int) -> np.ndarray:
    """The textbook recipe: standard scaling, LSTM(10) over 20 readings, stateful, batch 96,
    5 epochs, one step ahead rolled out over the day."""
    import keras

    keras.utils.set_random_seed(seed)
    window, batch = 20, 96
    train = p.values[: p.val_start]
    mean, std = train.mean(), train.std()
    z = (p.values - mean) / std
    ends = np.arange(window, p.val_start)
    ends = ends[: len(ends) // batch * batch]
    x = np.stack([z[e - window : e] for e in ends])[..., None]
    y = z[ends]
    net = keras.Sequential(
        [
            keras.Input(batch_shape=(batch, window, 1)),
            keras.layers.LSTM(10, stateful=True),
            keras.layers.Dense(1),
        ]
    )
    net.compile(optimizer="adam", loss="mse")
    for _ in range(5):
        net.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        net.layers[0].reset_state()
    twin = keras.Sequential([keras.Input((window, 1)), keras.layers.LSTM(10), keras.layers.Dense(1)])
    twin.set_weights(net.get_weights())
    history = np.stack([z[o - window : o] for o in p.origins])
    out = []
    for _ in range(p.day):
        step = np.asarray(twin(history[..., None], training=False))[:, 0]
        out.append(step)
        history = np.concatenate([history[:, 1:], step[:, None]], axis=1)
    return np.stack(out, axis=1) * std + mean


def statecast(p: Protocol, spec_fields: dict, seed: int) -> tuple[np.ndarray, dict, dict]:
    """Train through the public API, then forecast each origin through the serving path."""
    from app.ml.artifacts import save_artifacts
    from app.ml.data import SeriesData
    from app.ml.forecaster import Forecaster
    from app.ml.spec import ModelSpec
    from app.ml.training import train

    n = len(p.values)
    spec = ModelSpec(
        **spec_fields,
        seed=seed,
        validation_fraction=VALIDATION_DAYS * p.day / n,
        test_fraction=TEST_DAYS * p.day / n,
    )
    trained = train(spec, [SeriesData(p.values, p.timestamps, p.freq, "series")])
    with tempfile.TemporaryDirectory() as root:
        forecaster = Forecaster.load(save_artifacts(trained, Path(root) / "model"))
        mean, bands = [], {level: ([], []) for level in LEVELS}
        for o in p.origins:
            began = time.perf_counter()
            f = forecaster.forecast(p.values[:o], p.timestamps[:o], p.day, LEVELS)
            SERVING_MS["first of the day (seasonal fit)"].append(1000 * (time.perf_counter() - began))
            began = time.perf_counter()
            forecaster.forecast(p.values[:o], p.timestamps[:o], p.day, LEVELS)
            SERVING_MS["again the same day (fit cached)"].append(1000 * (time.perf_counter() - began))
            mean.append(f.mean)
            for level in LEVELS:
                bands[level][0].append(f.lower[level])
                bands[level][1].append(f.upper[level])
    return np.stack(mean), {k: (np.stack(lo), np.stack(hi)) for k, (lo, hi) in bands.items()}, trained.metrics


def coverage(p: Protocol, band: tuple[np.ndarray, np.ndarray]) -> float:
    lo, hi = band
    return float(100 * np.mean((p.actual >= lo) & (p.actual <= hi)))


# Horizon steps grouped for the per-step coverage table (quarters of the day ahead).
STEP_GROUPS = 4


def coverage_by_steps(p: Protocol, band: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """Coverage over each quarter of the horizon, pooled over origins."""
    lo, hi = band
    inside = (p.actual >= lo) & (p.actual <= hi)
    return [float(100 * np.mean(part)) for part in np.array_split(inside, STEP_GROUPS, axis=1)]


def plot(p: Protocol, forecasts: dict[str, np.ndarray], bands: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    show = [0, 5, 10]  # a few origins
    fig, axes = plt.subplots(len(show), 1, figsize=(11, 3.2 * len(show)))
    for ax, i in zip(axes, show, strict=True):
        o = p.origins[i]
        past = np.arange(o - p.day, o)
        ahead = np.arange(o, o + p.day)
        ax.plot(p.timestamps[past], p.values[past], color="black", lw=1)
        ax.plot(p.timestamps[ahead], p.actual[i], color="black", lw=1.5, label="actual")
        for level, alpha in ((95, 0.15), (80, 0.3)):
            lo, hi = bands[level]
            ax.fill_between(
                p.timestamps[ahead],
                lo[i],
                hi[i],
                color="tab:green",
                alpha=alpha,
                label=f"statecast default {level}%",
            )
        for (name, forecast), style in zip(forecasts.items(), ("--", "-.", "-", ":"), strict=False):
            ax.plot(p.timestamps[ahead], forecast[i], lw=1.2, ls=style, label=name)
        ax.set_title(f"origin {p.timestamps[o]:%Y-%m-%d %H:%M}")
        ax.set_ylabel("demand")
    axes[0].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--auto-budget-s", type=int, default=90)
    parser.add_argument("--docs", default=str(DOCS))
    parser.add_argument("--bigdeal-seeds", type=int, default=1, help="0 skips the BigDEAL benchmark")
    args = parser.parse_args(argv)
    p = Protocol(Path(args.csv))
    rows: dict[str, dict] = {}
    mean_forecasts: dict[str, np.ndarray] = {}
    bands_default: dict = {}
    cover: dict[str, list[tuple[float, float]]] = {}
    cover_steps: dict[int, list[list[float]]] = {level: [] for level in LEVELS}
    auto_records: list = []

    def run(name: str, make, seeds: int = 1) -> None:
        runs, seconds, forecasts = [], [], []
        for seed in range(seeds):
            began = time.monotonic()
            forecast = make(seed)
            seconds.append(time.monotonic() - began)
            forecasts.append(forecast)
            runs.append(p.scores(forecast))
        rows[name] = {"runs": runs, "seconds": seconds}
        mean_forecasts[name] = forecasts[0]
        mase = [r["MASE"] for r in runs]
        print(
            f"{name:34s} MASE {np.mean(mase):.3f} (min {min(mase):.3f}, max {max(mase):.3f}) "
            f"{np.mean(seconds):6.1f} s",
            flush=True,
        )

    run("seasonal naive, lag one day", lambda s: seasonal_naive(p, p.day))
    run("seasonal naive, lag one week", lambda s: seasonal_naive(p, p.week))
    run("MSTL + AutoETS (statsforecast)", lambda s: mstl_autoets(p))
    run("book recipe (LSTM(10), stateful)", lambda s: book_recipe(p, s), args.seeds)

    def method(name: str, fields: dict):
        def make(seed: int) -> np.ndarray:
            forecast, bands, metrics = statecast(p, fields, seed)
            cover.setdefault(name, []).append((coverage(p, bands[80]), coverage(p, bands[95])))
            if name.startswith("statecast default"):
                for level in LEVELS:
                    cover_steps[level].append(coverage_by_steps(p, bands[level]))
            if seed == 0 and name.startswith("statecast default"):
                bands_default.update(bands)
            if "auto" in metrics:
                auto_records.append(metrics["auto"])
            return forecast

        return make

    run("MSTL + last remainder (the stream model's start)", lambda s: mstl_last_remainder(p))
    run("statecast stateful (the default)", method("statecast default", {}), args.seeds)
    run("statecast window (stateful: false)", method("statecast window", {"stateful": False}), args.seeds)
    auto_name = f"statecast auto (budget {args.auto_budget_s} s)"
    run(auto_name, method(auto_name, {"auto": True, "budget_s": args.auto_budget_s}), args.seeds)

    live = [live_stream(p, seed) for seed in range(args.seeds)]
    for record in live:
        print(f"live stream: one-step MAE {record['model_mae']:.0f}, weekly naive {record['naive_mae']:.0f}")

    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    png = docs / "accuracy-taylor.png"
    shown = {k: v for k, v in mean_forecasts.items() if "lag one day" not in k and "book" not in k}
    plot(p, shown, bands_default, png)
    covariate_lines: list[str] = []
    if args.bigdeal_seeds:
        from bench import bigdeal

        fortnights, result = bigdeal.run(args.bigdeal_seeds)
        covariate_lines = bigdeal.report(fortnights, result, args.bigdeal_seeds)
    write_report(
        docs / "accuracy.md", args, p, rows, cover, auto_records, png.name, live, cover_steps, covariate_lines
    )
    return 0


# The Taylor goal (issue 17): the default model stays at or below this MASE.
TAYLOR_GOAL_MASE = 0.53


def write_report(
    path: Path,
    args,
    p: Protocol,
    rows: dict,
    cover: dict,
    auto_records: list,
    png: str,
    live: list,
    cover_steps: dict[int, list[list[float]]],
    covariate_lines: list[str],
) -> None:
    command = "PYTHONPATH=. python bench/accuracy.py" + (
        "" if args.csv == str(DEFAULT_CSV) else f" {args.csv}"
    )
    command += f" --seeds {args.seeds} --auto-budget-s {args.auto_budget_s}"
    command += f" --bigdeal-seeds {args.bigdeal_seeds}"
    lines = [
        "# Forecast accuracy",
        "",
        f"Generated by `{command}` (needs the `bench` extra). Data: `{Path(args.csv).name}`, "
        f"{len(p.values)} readings every {p.freq}.",
        "",
        f"Protocol: test = the last {TEST_DAYS} days, validation = the {VALIDATION_DAYS} days before, "
        f"train = the rest. {len(p.origins)} origins, one at every midnight of the test period, each "
        f"forecasting {p.day} steps from all data before it; errors over all {len(p.origins)}x{p.day} "
        "forecasts. MASE divides by the in-sample MAE of the weekly seasonal naive "
        f"(lag {p.week}) on the train part ({p.mase_scale:.1f}). Models with seeds: mean, and min to max "
        "over seeds. statecast models train through `app.ml.training.train` and forecast through "
        "`Forecaster.forecast` (the serving path) from the history before each origin.",
        "",
        "| method | MASE mean | MASE min..max | MAE | RMSE | MAPE % | seeds | wall s (per seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        runs = row["runs"]
        mase = [r["MASE"] for r in runs]

        def avg(key: str, runs=runs) -> float:
            return float(np.mean([r[key] for r in runs]))

        lines.append(
            f"| {name} | {np.mean(mase):.3f} | {min(mase):.3f}..{max(mase):.3f} | {avg('MAE'):.0f} | "
            f"{avg('RMSE'):.0f} | {avg('MAPE'):.2f} | {len(runs)} | {np.mean(row['seconds']):.1f} |"
        )
    lines += [
        "",
        "## Prediction intervals (conformal, calibrated on residuals no selection has seen)",
        "",
        "Widths per horizon step from rolling origins in the second half of the validation part; "
        "early stopping and `auto` select on the first half only. Share of the test readings "
        "inside the interval, per seed.",
        "",
        "| method | 80% coverage | 95% coverage |",
        "|---|---|---|",
    ]
    for name, pairs in cover.items():
        c80 = ", ".join(f"{a:.1f}" for a, _ in pairs)
        c95 = ", ".join(f"{b:.1f}" for _, b in pairs)
        lines.append(
            f"| {name} | {c80} (mean {np.mean([a for a, _ in pairs]):.1f}) | "
            f"{c95} (mean {np.mean([b for _, b in pairs]):.1f}) |"
        )
    lines += [
        "",
        f"The {p.actual.size} test forecasts come from {len(p.origins)} origins and are strongly "
        "correlated: coverage is good to a few points.",
        "",
    ]
    if cover_steps[LEVELS[0]]:
        quarter = p.day // STEP_GROUPS
        lines += [
            "Per horizon step (statecast default, mean over seeds; the API reports every step in "
            "`metrics.interval_coverage_by_step`):",
            "",
            "| level | "
            + " | ".join(f"steps {i * quarter + 1}-{(i + 1) * quarter}" for i in range(STEP_GROUPS))
            + " |",
            "|---|" + "---|" * STEP_GROUPS,
        ]
        for level in LEVELS:
            means = np.mean(cover_steps[level], axis=0)
            lines.append(f"| {level}% | " + " | ".join(f"{m:.1f}" for m in means) + " |")
        lines.append("")
    lines += [
        "## A live stream on the default model",
        "",
        f"The {len(p.values) - p.test_start} test readings posted one at a time to a stream warmed over the "
        "history before them: each is judged against the one-step forecast made just before it (what "
        "the stream's live accuracy reports). Baselines at the same lead, one step: persistence (the "
        "last reading) and the weekly naive at lead one (the last reading plus the change between "
        "the same two readings a week earlier); the weekly naive of the whole day-ahead protocol "
        "(last week's reading, a forecast made up to a week ahead) only for reference. One cell step "
        "per reading; the state is what a stream's row holds.",
        "",
        "| seed | one-step MAE | persistence MAE | ratio | weekly naive at lead one MAE | ratio "
        "| last week's reading MAE | ms per reading | state bytes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, record in enumerate(live):
        model = record["model_mae"]
        lines.append(
            f"| {seed} | {model:.0f} | {record['persistence_mae']:.0f} | "
            f"{model / record['persistence_mae']:.3f} | {record['naive_one_step_mae']:.0f} | "
            f"{model / record['naive_one_step_mae']:.3f} | {record['naive_mae']:.0f} | "
            f"{record['step_ms']:.2f} | {record['state_bytes']:.0f} |"
        )
    lines += [
        "",
        "## Serving time",
        "",
        "`Forecaster.forecast` of one day from the history before each origin (numpy only, statecast "
        "models, all seeds). The first forecast of a day refits the seasonal component; later ones that "
        "day reuse the fit.",
        "",
        "| call | median ms | max ms |",
        "|---|---|---|",
    ]
    for name, times in SERVING_MS.items():
        if times:
            lines.append(f"| {name} | {np.median(times):.1f} | {np.max(times):.1f} |")
    lines.append("")
    if auto_records:
        lines += [
            "## `auto` candidates (MASE on the validation part's first half, scaled by the "
            "model's baseline, here the weekly naive; seed 0)",
            "",
            "| candidate (change from the default) | validation MASE | seconds | chosen |",
            "|---|---|---|---|",
        ]
        for record in auto_records[0]:
            score = record["validation_mase"]
            lines.append(
                f"| {record['spec'] or 'default'} | {'-' if score is None else f'{score:.3f}'} | "
                f"{record['seconds']} | {'yes' if record.get('chosen') else ''} |"
            )
        lines.append("")
    default = [r["MASE"] for r in rows["statecast stateful (the default)"]["runs"]]
    lines += [
        f"Taylor goal (issue 17): the default stays at or below MASE {TAYLOR_GOAL_MASE}: "
        f"{np.mean(default):.3f} ({'met' if np.mean(default) <= TAYLOR_GOAL_MASE else 'not met'}).",
        "",
        f"![forecasts at three origins with the default's 80% and 95% bands]({png})",
        "",
    ]
    lines += covariate_lines
    lines += [
        "How the stream model got here, measured by hand on the way: `accuracy-history.md` "
        "(not generated).",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
