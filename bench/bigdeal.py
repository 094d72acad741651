"""Accuracy with known-future covariates: BigDEAL hourly load, temperature and US holidays.

Protocol (issue 17): three test fortnights (the last 14 days of the file, a winter and a summer
fortnight), each with the 7 days before it as validation and the `TRAIN_DAYS` before those as
training (every model reads the same history); day-ahead origins at every midnight, each
forecasting 24 hours from all data before it. MASE divides by the in-sample MAE of the weekly
seasonal naive (lag 168) on the training part. Temperature at forecast time is the actual
value over the history and, over the horizon, the actual value plus AR(1) noise (rho 0.9,
sd 1.5 °F, seeded per origin): a realistic day-ahead forecast; a second column reads the actual
temperature (oracle). Holidays: the `holidays` package's US calendar.

Run by `bench/accuracy.py`, which writes the tables into docs/accuracy.md. Where the covariates
enter a window model (`spec.covariate_inputs`: the profile, the network's inputs, or both) is
compared side by side, alone, by

    PYTHONPATH=. python -m bench.bigdeal --covariate-inputs [--seeds 1] [--stream]

(`--stream`: the same comparison for a stream model, `stateful: true`, the recipe otherwise
pinned as the window one's.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bigdeal2022_hourly.csv"
DAY, WEEK = 24, 168
TEST_DAYS, VALIDATION_DAYS = 14, 7
# Two years of training history per fortnight: a year of each season to fit the temperature
# response, within the machine's budget (the whole file is five years).
TRAIN_DAYS = 730
# The winter and summer fortnights start on these Mondays.
FORTNIGHTS = {"last 14 days": None, "winter fortnight": "2006-01-16", "summer fortnight": "2006-07-17"}
NOISE_RHO, NOISE_SD_F = 0.9, 1.5
HOLIDAYS = "US"
LEVELS = (80, 95)
# MSTL + AutoETS reads the last weeks before each origin, as statecast's MSTL fits do.
MSTL_WEEKS = 12
LIGHTGBM = {"n_estimators": 600, "learning_rate": 0.05, "num_leaves": 63, "min_child_samples": 20,
            "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "n_jobs": 1,
            "verbosity": -1, "random_state": 0}


@dataclass(frozen=True)
class Period:
    """One test fortnight and the history before it."""

    name: str
    values: np.ndarray
    temperature: np.ndarray
    timestamps: pd.DatetimeIndex
    test_start: int
    val_start: int
    mase_scale: float

    @property
    def origins(self) -> list[int]:
        return [self.test_start + d * DAY for d in range(TEST_DAYS)]

    @property
    def actual(self) -> np.ndarray:
        return np.stack([self.values[o : o + DAY] for o in self.origins])

    def forecast_temperature(self, origin_index: int) -> np.ndarray:
        """The temperature a forecast at origin `origin_index` reads over its horizon."""
        rng = np.random.default_rng(1000 + origin_index)
        noise = np.empty(DAY)
        noise[0] = rng.normal(0, NOISE_SD_F)
        innovations = rng.normal(0, NOISE_SD_F * np.sqrt(1 - NOISE_RHO**2), DAY)
        for k in range(1, DAY):
            noise[k] = NOISE_RHO * noise[k - 1] + innovations[k]
        o = self.origins[origin_index]
        return self.temperature[o : o + DAY] + noise

    def temperature_at(self, origin_index: int, oracle: bool) -> np.ndarray:
        """History and horizon temperature for a forecast at the origin (len origin + DAY)."""
        o = self.origins[origin_index]
        future = self.temperature[o : o + DAY] if oracle else self.forecast_temperature(origin_index)
        return np.concatenate([self.temperature[:o], future])

    def mase(self, forecast: np.ndarray) -> float:
        return float(np.mean(np.abs(forecast - self.actual)) / self.mase_scale)


def periods(csv: Path = CSV) -> list[Period]:
    frame = pd.read_csv(csv, parse_dates=["timestamp"])
    timestamps = pd.DatetimeIndex(frame["timestamp"])
    out = []
    for name, start in FORTNIGHTS.items():
        if start is None:
            test_start = len(frame) - TEST_DAYS * DAY
        else:
            test_start = int(timestamps.get_loc(pd.Timestamp(start)))
        end = test_start + TEST_DAYS * DAY
        first = test_start - (VALIDATION_DAYS + TRAIN_DAYS) * DAY
        values = frame["load"].to_numpy(np.float64)[first:end]
        train = values[: TRAIN_DAYS * DAY]
        out.append(
            Period(
                name=name,
                values=values,
                temperature=frame["temperature"].to_numpy(np.float64)[first:end],
                timestamps=timestamps[first:end],
                test_start=test_start - first,
                val_start=test_start - first - VALIDATION_DAYS * DAY,
                mase_scale=float(np.mean(np.abs(train[WEEK:] - train[:-WEEK]))),
            )
        )
    return out


def seasonal_naive(p: Period, lag: int) -> np.ndarray:
    steps = np.arange(DAY)
    return np.stack([p.values[o - lag + steps % lag] for o in p.origins])


def mstl_autoets(p: Period) -> np.ndarray:
    from statsforecast.models import MSTL, AutoETS

    out = []
    for o in p.origins:
        model = MSTL(season_length=[DAY, WEEK], trend_forecaster=AutoETS(model="ZZN"))
        out.append(model.forecast(y=p.values[max(0, o - MSTL_WEEKS * WEEK) : o], h=DAY)["mean"])
    return np.stack(out)


def _exogenous(p: Period, temperature: np.ndarray, stop: int) -> pd.DataFrame:
    """LightGBM's covariates at the first `stop` readings: temperature, its square and mean
    over the past day, and the day type."""
    from app.ml.calendar import CalendarSpec, day_types

    stamps = p.timestamps[:stop]
    t = temperature[:stop]
    return pd.DataFrame(
        {
            "unique_id": "load",
            "ds": stamps,
            "temperature": t,
            "temperature_sq": t**2,
            "temperature_day": pd.Series(t).rolling(DAY, min_periods=1).mean().to_numpy(),
            "day_type": day_types(stamps, CalendarSpec(HOLIDAYS)).astype(np.int64),
        }
    )


def lightgbm(p: Period, oracle: bool) -> np.ndarray:
    """mlforecast's LightGBM with lags, calendar features, temperature and day types; fitted
    once on the training and validation parts, then forecast recursively from each origin's
    history (which re-levels the lags at every origin)."""
    import lightgbm as lgb
    from mlforecast import MLForecast

    forecaster = MLForecast(
        models={"lgbm": lgb.LGBMRegressor(**LIGHTGBM)},
        freq="h",
        lags=[1, 2, 3, DAY, 2 * DAY, WEEK],
        date_features=["hour", "dayofweek", "dayofyear"],
    )
    frame = _exogenous(p, p.temperature, p.test_start)
    frame["y"] = p.values[: p.test_start]
    forecaster.fit(frame, static_features=[])
    out = []
    for i, o in enumerate(p.origins):
        exogenous = _exogenous(p, p.temperature_at(i, oracle), o + DAY)
        history = exogenous.iloc[:o].assign(y=p.values[:o])
        prediction = forecaster.predict(DAY, new_df=history, X_df=exogenous.iloc[o:].reset_index(drop=True))
        out.append(prediction["lgbm"].to_numpy())
    return np.stack(out)


@dataclass
class Statecast:
    """A statecast model's forecasts with realistic and oracle temperature."""

    realistic: np.ndarray
    oracle: np.ndarray
    bands: dict[int, tuple[np.ndarray, np.ndarray]]
    serving_ms: list[float]


def statecast(p: Period, spec_fields: dict, seed: int, *, covariates: bool, holidays: bool) -> Statecast:
    """Train through `train`, forecast each origin through `Forecaster.forecast`."""
    from app.ml.artifacts import save_artifacts
    from app.ml.calendar import CalendarSpec
    from app.ml.data import SeriesData
    from app.ml.forecaster import Forecaster
    from app.ml.spec import ModelSpec
    from app.ml.training import train

    n = len(p.values)
    spec = ModelSpec(**spec_fields, seed=seed, validation_fraction=VALIDATION_DAYS * DAY / n,
                     test_fraction=TEST_DAYS * DAY / n)
    calendar = CalendarSpec(HOLIDAYS) if holidays else None
    series = SeriesData(p.values, p.timestamps, "h", "load",
                        covariates={"temperature": p.temperature} if covariates else {}, calendar=calendar)
    trained = train(spec, [series])
    with tempfile.TemporaryDirectory() as root:
        forecaster = Forecaster.load(save_artifacts(trained, Path(root) / "model"))
    out: dict[bool, list[np.ndarray]] = {True: [], False: []}
    bands: dict[int, tuple[list, list]] = {level: ([], []) for level in LEVELS}
    serving_ms = []
    for i, o in enumerate(p.origins):
        for oracle in (False, True):
            given = {"temperature": p.temperature_at(i, oracle)} if covariates else None
            began = time.perf_counter()
            f = forecaster.forecast(p.values[:o], p.timestamps[:o], DAY, LEVELS, covariates=given,
                                    calendar=calendar)
            if not oracle:
                serving_ms.append(1000 * (time.perf_counter() - began))
                for level in LEVELS:
                    bands[level][0].append(f.lower[level])
                    bands[level][1].append(f.upper[level])
            out[oracle].append(f.mean)
    return Statecast(
        realistic=np.stack(out[False]),
        oracle=np.stack(out[True]),
        bands={level: (np.stack(lo), np.stack(hi)) for level, (lo, hi) in bands.items()},
        serving_ms=serving_ms,
    )


def coverage(p: Period, band: tuple[np.ndarray, np.ndarray]) -> float:
    lo, hi = band
    return float(100 * np.mean((p.actual >= lo) & (p.actual <= hi)))


# name -> (spec fields, reads temperature, reads holidays)
STATECAST_MODELS: dict[str, tuple[dict, bool, bool]] = {
    "statecast default, no covariates or holidays (MSTL)": ({}, False, False),
    "statecast default, temperature only (no holidays)": ({}, True, False),
    "statecast default, temperature + holidays (stream)": ({}, True, True),
    "statecast window, temperature + holidays": ({"stateful": False}, True, True),
    "statecast window, temperature + holidays, network inputs (covariate_inputs=network)": (
        {"stateful": False, "covariate_inputs": "network"}, True, True),
    "statecast window, temperature + holidays, profile and network (covariate_inputs=both)": (
        {"stateful": False, "covariate_inputs": "both"}, True, True),
}
# `--covariate-inputs`: one window recipe, every field that matters pinned, with the covariates in
# the profile, the network's inputs, or both (the seasonal naives as a reference; the models
# without covariates are in the full run's table).
PINNED_WINDOW = {"stateful": False, "cell": "gru", "units": 16, "layers": 1, "window": DAY, "horizon": DAY,
                 "deseasonalize": "mstl", "loss": "mae", "epochs": 40, "patience": 8, "batch_size": 64,
                 "learning_rate": 1e-3}
COVARIATE_INPUT_MODELS: dict[str, tuple[dict, bool, bool]] = {
    **{
        f"window, temperature + holidays, covariate_inputs={inputs}": (
            {**PINNED_WINDOW, "covariate_inputs": inputs}, True, True)
        for inputs in ("profile", "network", "both")
    },
}
PINNED_STREAM = {**PINNED_WINDOW, "stateful": True}
STREAM_COVARIATE_INPUT_MODELS: dict[str, tuple[dict, bool, bool]] = {
    f"stream, temperature + holidays, covariate_inputs={inputs}": (
        {**PINNED_STREAM, "covariate_inputs": inputs}, True, True)
    for inputs in ("profile", "network", "both")
}
DEFAULT_WITH = "statecast default, temperature + holidays (stream)"
DEFAULT_WITHOUT = "statecast default, no covariates or holidays (MSTL)"
ANCHOR = "LightGBM (mlforecast): lags, calendar, temperature, day types"


@dataclass
class Result:
    """Per model and period: MASE with realistic and oracle temperature, seconds, coverage."""

    mase: dict[str, dict[str, list[tuple[float, float]]]]
    seconds: dict[str, list[float]]
    cover: dict[str, dict[str, list[tuple[float, float]]]]
    serving_ms: list[float]


def run(
    seeds: int,
    log: Callable[[str], None] = print,
    models: dict[str, tuple[dict, bool, bool]] | None = None,
    fortnights: list[str] | None = None,
) -> tuple[list[Period], Result]:
    """Every baseline and statecast model on every fortnight; with `models`, those alone (and
    with `fortnights`, on those alone)."""
    result = Result({}, {}, {}, [])
    all_periods = [p for p in periods() if fortnights is None or p.name in fortnights]

    def record(name: str, p: Period, realistic: float, oracle: float, seconds: float) -> None:
        result.mase.setdefault(name, {}).setdefault(p.name, []).append((realistic, oracle))
        result.seconds.setdefault(name, []).append(seconds)
        log(f"{p.name:18s} {name:60s} MASE {realistic:.3f} (oracle {oracle:.3f}) {seconds:6.1f} s")

    for p in all_periods:
        for name, lag in (("seasonal naive, lag one day", DAY), ("seasonal naive, lag one week", WEEK)):
            mase = p.mase(seasonal_naive(p, lag))
            record(name, p, mase, mase, 0.0)
        if models is not None:
            for name, (fields, covariates, holidays) in models.items():
                for seed in range(seeds):
                    began = time.monotonic()
                    got = statecast(p, fields, seed, covariates=covariates, holidays=holidays)
                    record(name, p, p.mase(got.realistic), p.mase(got.oracle), time.monotonic() - began)
            continue
        began = time.monotonic()
        mase = p.mase(mstl_autoets(p))
        record(f"MSTL + AutoETS (statsforecast, last {MSTL_WEEKS} weeks)", p, mase, mase,
               time.monotonic() - began)
        began = time.monotonic()
        realistic = p.mase(lightgbm(p, oracle=False))
        oracle = p.mase(lightgbm(p, oracle=True))
        record(ANCHOR, p, realistic, oracle, time.monotonic() - began)
        for name, (fields, covariates, holidays) in STATECAST_MODELS.items():
            for seed in range(seeds):
                began = time.monotonic()
                got = statecast(p, fields, seed, covariates=covariates, holidays=holidays)
                record(name, p, p.mase(got.realistic), p.mase(got.oracle), time.monotonic() - began)
                result.cover.setdefault(name, {}).setdefault(p.name, []).append(
                    (coverage(p, got.bands[80]), coverage(p, got.bands[95]))
                )
                if name == DEFAULT_WITH:
                    result.serving_ms += got.serving_ms
    return all_periods, result


def report(all_periods: list[Period], result: Result, seeds: int) -> list[str]:
    """The Markdown section of docs/accuracy.md."""
    names = [p.name for p in all_periods]

    def mean(name: str, period: str, which: int) -> float:
        return float(np.mean([pair[which] for pair in result.mase[name][period]]))

    def overall(name: str, which: int) -> float:
        return float(np.mean([mean(name, period, which) for period in names]))

    lines = [
        "## Known-future covariates: BigDEAL hourly load, temperature and US holidays",
        "",
        f"Data: `bigdeal2022_hourly.csv` (hourly load of one US utility, 2002-2006, with the mean "
        f"temperature of four stations in °F). Three test fortnights: {', '.join(names)} "
        f"({', '.join(str(p.timestamps[p.test_start].date()) for p in all_periods)} on); for each, "
        f"validation = the {VALIDATION_DAYS} days before and train = the {TRAIN_DAYS} days before "
        f"those. {TEST_DAYS} day-ahead origins per fortnight, one at every midnight, each forecasting "
        f"{DAY} hours from all data before it. MASE divides by the in-sample MAE of the weekly seasonal "
        f"naive (lag {WEEK}) on the training part. Realistic temperature: the actual value plus AR(1) "
        f"noise over the horizon (rho {NOISE_RHO}, sd {NOISE_SD_F} °F, seeded per origin); oracle: the "
        f"actual value. Holidays: `holidays` package, {HOLIDAYS}. statecast models: seeds 0.."
        f"{seeds - 1}, mean MASE; they train through `train` and forecast through `Forecaster.forecast`.",
        "",
        "| method | " + " | ".join(names) + " | mean, realistic temperature | mean, oracle temperature "
        "| wall s (per fit) |",
        "|---|" + "---|" * (len(names) + 3),
    ]
    for name in result.mase:
        cells = " | ".join(f"{mean(name, period, 0):.3f}" for period in names)
        lines.append(
            f"| {name} | {cells} | **{overall(name, 0):.3f}** | {overall(name, 1):.3f} | "
            f"{np.mean(result.seconds[name]):.1f} |"
        )
    with_cov, without, anchor = overall(DEFAULT_WITH, 0), overall(DEFAULT_WITHOUT, 0), overall(ANCHOR, 0)
    cover80 = [c[0] for runs in result.cover[DEFAULT_WITH].values() for c in runs]
    cover95 = [c[1] for runs in result.cover[DEFAULT_WITH].values() for c in runs]
    lines += [
        "",
        "Per-fortnight columns: realistic temperature.",
        "",
        "Goals (issue 17), realistic temperature:",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        f"| default with covariates at or below LightGBM with the same covariates | {with_cov:.3f} vs "
        f"{anchor:.3f} | {'yes' if with_cov <= anchor else 'no'} |",
        f"| default with covariates at least 25% below the default without | {with_cov:.3f} vs "
        f"{without:.3f} ({100 * (1 - with_cov / without):.0f}% below) | "
        f"{'yes' if with_cov <= 0.75 * without else 'no'} |",
        f"| 80% and 95% intervals within 3 points (default with covariates, all fortnights) | "
        f"{np.mean(cover80):.1f}% and {np.mean(cover95):.1f}% | "
        f"{'yes' if abs(np.mean(cover80) - 80) <= 3 and abs(np.mean(cover95) - 95) <= 3 else 'no'} |",
        "",
        "Interval coverage per fortnight (statecast models, mean over seeds, realistic temperature):",
        "",
        "| method | " + " | ".join(f"{n} 80% / 95%" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, by_period in result.cover.items():
        cells = " | ".join(
            f"{np.mean([c[0] for c in by_period[n]]):.1f} / {np.mean([c[1] for c in by_period[n]]):.1f}"
            for n in names
        )
        lines.append(f"| {name} | {cells} |")
    if result.serving_ms:
        lines += [
            "",
            f"Serving: `Forecaster.forecast` of a day with temperature and holidays (the default with "
            f"covariates, numpy only): median {np.median(result.serving_ms):.1f} ms, max "
            f"{np.max(result.serving_ms):.1f} ms; the profile is fixed at training, so no seasonal "
            "fit runs on the request path.",
        ]
    lines.append("")
    return lines


def check_default(seeds: int) -> None:
    """Only the default with temperature and holidays, over the three fortnights: MASE, interval
    coverage and serving time, for checking intervals without the whole table."""
    fields, covariates, holidays = STATECAST_MODELS[DEFAULT_WITH]
    cover80, cover95, mase, serving_ms = [], [], [], []
    for p in periods():
        for seed in range(seeds):
            began = time.monotonic()
            got = statecast(p, fields, seed, covariates=covariates, holidays=holidays)
            mase.append(p.mase(got.realistic))
            cover80.append(coverage(p, got.bands[80]))
            cover95.append(coverage(p, got.bands[95]))
            serving_ms += got.serving_ms
            print(f"{p.name:18s} seed {seed}: MASE {mase[-1]:.3f} (oracle {p.mase(got.oracle):.3f}), "
                  f"coverage 80% {cover80[-1]:.1f}, 95% {cover95[-1]:.1f}, {time.monotonic() - began:.0f} s",
                  flush=True)
    print(f"mean: MASE {np.mean(mase):.3f}, coverage 80% {np.mean(cover80):.1f}, 95% {np.mean(cover95):.1f}; "
          f"serving median {np.median(serving_ms):.1f} ms, max {np.max(serving_ms):.1f} ms")


def covariate_inputs_table(
    all_periods: list[Period], result: Result, seeds: int, kind: str = "window"
) -> list[str]:
    """Markdown: MASE per fortnight (realistic temperature) and the means, for `--covariate-inputs`."""
    names = [p.name for p in all_periods]

    def mean(name: str, period: str, which: int) -> float:
        return float(np.mean([pair[which] for pair in result.mase[name][period]]))

    lines = [
        f"BigDEAL, {kind} models (seeds 0..{seeds - 1}, mean MASE; per-fortnight columns realistic "
        "temperature, then oracle):",
        "",
        "| method | " + " | ".join(names) + " | mean, realistic | "
        + " | ".join(f"{n}, oracle" for n in names) + " | mean, oracle |",
        "|---|" + "---|" * (2 * len(names) + 2),
    ]
    for name in result.mase:
        realistic = [mean(name, n, 0) for n in names]
        oracle = [mean(name, n, 1) for n in names]
        lines.append(
            f"| {name} | " + " | ".join(f"{v:.3f}" for v in realistic) + f" | **{np.mean(realistic):.3f}** | "
            + " | ".join(f"{v:.3f}" for v in oracle) + f" | {np.mean(oracle):.3f} |"
        )
    return lines


def main() -> None:
    """Alone, two checks without the whole accuracy table:

        PYTHONPATH=. python -m bench.bigdeal --seeds 1                      # the default with covariates
        PYTHONPATH=. python -m bench.bigdeal --covariate-inputs --seeds 1   # where covariates enter
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covariate-inputs", action="store_true",
                        help="compare where a window model's covariates enter (profile, network, both)")
    parser.add_argument("--stream", action="store_true",
                        help="with --covariate-inputs: a stream model (stateful) instead of a window model")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--fortnight", action="append", choices=list(FORTNIGHTS),
                        help="with --covariate-inputs: only this fortnight (repeatable; default: all three)")
    args = parser.parse_args()
    if not args.covariate_inputs:
        check_default(args.seeds)
        return
    models = STREAM_COVARIATE_INPUT_MODELS if args.stream else COVARIATE_INPUT_MODELS
    all_periods, result = run(args.seeds, models=models, fortnights=args.fortnight)
    kind = "stream" if args.stream else "window"
    print("\n".join(covariate_inputs_table(all_periods, result, args.seeds, kind)))


if __name__ == "__main__":
    main()
