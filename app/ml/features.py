"""Network inputs and targets from readings: shared verbatim by training and serving.

Every transformation around the network lives here, in numpy, so that the Keras stack stays a
plain RNN -> Dense stack that `engine.NumpyNetwork` can mirror, and so that the forecaster builds
exactly the inputs the network was trained on.

Values are divided by a per-series scale fitted on the training part, and both inputs and targets
are taken relative to the last observed level: a level drift then shifts nothing the network sees.
Deseasonalised window models (`seasonal_periods` set) read the series minus its MSTL seasonal
component (`seasonal.py`) the same way; their forecast is the seasonal component extended over the
horizon plus the last deseasonalised level plus the network's output. Models that read
covariates read a regression profile (`profile.py`, `FeatureConfig.profile`) in place of MSTL:
fixed at training, the same path for learning and serving. Window models may also read the
covariates themselves (`FeatureConfig.network_covariates`): each step's input holds each
covariate standardised on the training part, 0 where missing, and a present flag (`step_inputs`),
and the same columns over the horizon's steps enter a branch joined to the state before the head
(`future_batch`, `architectures.build_network`).
Window models read `window` readings minus the last one; stream (stateful) models read one
reading at a time as the change of the deseasonalised series since the previous reading
(`stream_seasonal.py`). Targets are the next `horizon` readings minus the last one.

New accuracy options (seasonal lag inputs, a seasonal-naive residual target, per-window
normalisation) are meant to be one flag on `FeatureConfig` each, honoured by `window_batch`,
`stream_seasonal.stream_arrays` (and the forecaster's stream step) and `to_values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from app.ml.profile import PathFitter
from app.ml.seasonal import (
    FIT_SEASONS,
    SeasonalConfig,
    SeasonalFitter,
    candidate_periods,
    decompose,
    extend,
    on_wall_clock,
    wall_slots,
)
from app.ml.seasonal import usable_periods as _usable_periods
from app.ml.spec import ResolvedSpec
from app.timegrid import NS_PER_DAY

NS_PER_WEEK = 7 * NS_PER_DAY
# A network covariate's columns: its standardised value (0 where missing) and a present flag.
COLUMNS_PER_COVARIATE = 2
# Monday 1970-01-05 00:00: day-of-week phase 0 is Monday midnight.
_MONDAY_EPOCH_NS = 4 * NS_PER_DAY


@dataclass(frozen=True)
class FeatureConfig:
    """Which inputs the network reads and how targets are expressed."""

    window: int
    horizon: int
    stream: bool
    time_of_day: bool
    day_of_week: bool
    # Empty: the raw series. Otherwise the MSTL periods fitted (when the data covers them twice).
    seasonal_periods: tuple[int, ...] = ()
    fit_steps: int = 0
    steps_per_day: float = 1.0
    # IANA zone of the series' local time: calendar inputs and daily seasons follow its clock.
    timezone: str = "UTC"
    # Series with regular closed hours: missing readings stay missing (a zero input beside a
    # `present` flag; no loss, metric or calibration on them) instead of cutting the windows.
    masked: bool = False
    # Models that read covariates: the seasonal component is a regression profile (with the
    # series' holidays in its day types) fitted once on the training part (`profile.py`).
    profile: bool = False
    # The covariates the profile reads, in its order.
    covariates: tuple[str, ...] = ()
    # The covariates the network reads (`spec.covariate_inputs`), in its input order, each
    # standardised by its training part's mean (`covariate_centers`) and standard deviation
    # (`covariate_spreads`), filled by training.
    network_covariates: tuple[str, ...] = ()
    covariate_centers: tuple[float, ...] = ()
    covariate_spreads: tuple[float, ...] = ()

    @classmethod
    def from_spec(cls, spec: ResolvedSpec, *, profile: bool = False) -> FeatureConfig:
        """The features of `spec`; `profile`: the model's covariates enter a regression profile,
        which a deseasonalised model then reads instead of MSTL fits."""
        profile = profile and spec.deseasonalize == "mstl"
        network = spec.covariate_inputs != "profile"
        mstl = spec.deseasonalize == "mstl" and not profile
        periods = candidate_periods(spec.steps_per_day) if mstl else ()
        return cls(
            window=spec.window,
            horizon=spec.horizon,
            stream=spec.stateful,
            # Daily readings all share one time of day: that input would be a constant.
            time_of_day=spec.calendar and spec.steps_per_day > 1,
            # Weekly and longer steps: every reading falls on the same weekday.
            day_of_week=spec.calendar and spec.steps_per_day >= 1,
            seasonal_periods=periods,
            fit_steps=max(FIT_SEASONS * max(periods), spec.window) if periods else 0,
            steps_per_day=spec.steps_per_day,
            profile=profile,
            covariates=spec.covariates if profile else (),
            network_covariates=spec.covariates if network else (),
        )

    @property
    def deseasonalized(self) -> bool:
        return bool(self.seasonal_periods) or self.profile

    @property
    def mstl(self) -> bool:
        """Whether the seasonal component comes from MSTL fits made before each day."""
        return bool(self.seasonal_periods)

    def seasonal(self) -> SeasonalConfig:
        return SeasonalConfig(self.seasonal_periods, self.fit_steps, self.steps_per_day, self.timezone)

    @property
    def context_steps(self) -> int:
        """Readings a forecast reads: the window, or the seasonal fit's history."""
        return max(self.window, self.seasonal().context_steps) if self.mstl else self.window

    @property
    def input_names(self) -> list[str]:
        names = ["change" if self.stream else "value_minus_last"]
        if self.time_of_day:
            names += ["time_of_day_sin", "time_of_day_cos"]
        if self.day_of_week:
            names += ["day_of_week_sin", "day_of_week_cos"]
        for name in self.network_covariates:
            names += [name, f"{name}_present"]
        if self.masked:
            names += ["present"]
        return names

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_covariate_columns(self) -> int:
        """Columns per step of the network's covariates: a value and a present flag each."""
        return COLUMNS_PER_COVARIATE * len(self.network_covariates)

    @property
    def n_future(self) -> int:
        """Inputs of the future branch: the covariate columns of every step of the horizon; 0
        for a network that reads no covariates (and has no branch)."""
        return self.horizon * self.n_covariate_columns

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inputs": self.input_names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        fields = {k: v for k, v in data.items() if k != "inputs"}
        fields["seasonal_periods"] = tuple(fields.get("seasonal_periods", ()))
        for name in ("covariates", "network_covariates", "covariate_centers", "covariate_spreads"):
            fields[name] = tuple(fields.get(name, ()))
        return cls(**fields)


def calendar(timestamps: pd.DatetimeIndex | np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Sine/cosine of time of day and day of week, shape (T, C); C may be 0.

    Read on the series' local wall clock (`config.timezone`; a naive index is UTC): demand follows
    local hours, so 08:00 in winter and 08:00 in summer get the same input across a DST change.
    """
    ns = local_wall_ns(timestamps, config.timezone)
    columns = []
    if config.time_of_day:
        angle = 2 * np.pi * (ns % NS_PER_DAY) / NS_PER_DAY
        columns += [np.sin(angle), np.cos(angle)]
    if config.day_of_week:
        angle = 2 * np.pi * ((ns - _MONDAY_EPOCH_NS) % NS_PER_WEEK) / NS_PER_WEEK
        columns += [np.sin(angle), np.cos(angle)]
    if not columns:
        return np.zeros((len(ns), 0))
    return np.stack(columns, axis=1)


def covariate_columns(covariates: Mapping[str, np.ndarray], config: FeatureConfig) -> np.ndarray:
    """(T, 2K): per network covariate, its values standardised by the training part's mean and
    spread, 0 where missing (NaN), beside a present flag: a missing reading is masked, never
    invented."""
    missing = [name for name in config.network_covariates if name not in covariates]
    if missing:
        raise ValueError(
            f"Received covariates {sorted(covariates)}, expected values of "
            f"{list(config.network_covariates)} (the covariates the network reads)."
        )
    arrays = [np.asarray(covariates[name], dtype=np.float64) for name in config.network_covariates]
    out = np.zeros((len(arrays[0]) if arrays else 0, config.n_covariate_columns))
    for i, (values, center, spread) in enumerate(
        zip(arrays, config.covariate_centers, config.covariate_spreads, strict=True)
    ):
        present = np.isfinite(values)
        out[:, COLUMNS_PER_COVARIATE * i] = np.where(present, (values - center) / spread, 0.0)
        out[:, COLUMNS_PER_COVARIATE * i + 1] = present
    return out


def step_inputs(
    timestamps: pd.DatetimeIndex | np.ndarray,
    config: FeatureConfig,
    covariates: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Every input of each step but the reading's own, (T, C): the calendar, then the network's
    covariate columns (`covariates`: name -> values at the T times, NaN where missing)."""
    cal = calendar(timestamps, config)
    if not config.network_covariates:
        return cal
    columns = covariate_columns(covariates or {}, config)
    if len(columns) != len(cal):
        raise ValueError(
            f"Received covariates of {len(columns)} values, expected {len(cal)} (one per step)."
        )
    return np.concatenate([cal, columns], axis=1)


def future_batch(steps: np.ndarray, ends: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The future branch's inputs (B, horizon * 2K) at origins `ends`: the covariate columns
    (the last of `step_inputs`' columns, `steps`) of the `horizon` steps after each origin."""
    ends = np.asarray(ends, dtype=np.int64)
    columns = steps[:, steps.shape[1] - config.n_covariate_columns :]
    windows = sliding_window_view(columns, config.horizon, axis=0)[ends + 1]  # (B, 2K, H)
    out: npt.NDArray[np.float32] = windows.transpose(0, 2, 1).reshape(len(ends), config.n_future)
    return out.astype(np.float32)


def every_future(steps: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """A stream model's future branch inputs at every step of one series, (T, horizon * 2K): the
    covariate columns of the `horizon` steps after each. Steps past the series' end read as
    missing (0, flag off), as serving reads covariates it does not hold."""
    padded = np.concatenate([steps, np.zeros((config.horizon, steps.shape[1]))])
    return future_batch(padded, np.arange(len(steps)), config)


@dataclass(frozen=True)
class CovariateTrack:
    """The network's covariate columns (`covariate_columns`) at grid times `ns` (int64 ns, UTC,
    increasing): what a forecast's windows and its future branch read. A time it does not hold
    reads as missing (value 0, present 0), never invented."""

    ns: np.ndarray
    columns: np.ndarray

    @classmethod
    def over(
        cls, ns: np.ndarray, covariates: Mapping[str, np.ndarray], config: FeatureConfig
    ) -> CovariateTrack:
        return cls(np.asarray(ns, dtype=np.int64), covariate_columns(covariates, config))

    def at(self, ns: np.ndarray) -> np.ndarray:
        """The columns at each of `ns`, (T, 2K)."""
        ns = np.asarray(ns, dtype=np.int64)
        index = np.minimum(np.searchsorted(self.ns, ns), max(len(self.ns) - 1, 0))
        held = (self.ns[index] == ns) if len(self.ns) else np.zeros(len(ns), dtype=bool)
        out = np.zeros((len(ns), self.columns.shape[1]))
        out[held] = self.columns[index[held]]
        return out


def local_wall_ns(timestamps: pd.DatetimeIndex | np.ndarray, timezone: str) -> np.ndarray:
    """Nanoseconds of each timestamp's wall-clock time in `timezone` (a naive index, or an array
    of int64 nanoseconds, is UTC)."""
    if isinstance(timestamps, np.ndarray):
        if timezone == "UTC":
            return timestamps
        timestamps = pd.DatetimeIndex(timestamps)
    if timestamps.tz is None:
        if timezone == "UTC":
            utc_ns: npt.NDArray[np.int64] = timestamps.asi8
            return utc_ns
        timestamps = timestamps.tz_localize("UTC")
    wall_ns: npt.NDArray[np.int64] = timestamps.tz_convert(timezone).tz_localize(None).asi8
    return wall_ns


def window_batch(
    scaled: np.ndarray,
    cal: np.ndarray,
    ends: np.ndarray,
    config: FeatureConfig,
    *,
    targets: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (B, window, F) and targets (B, horizon) for windows whose last reading is `ends`.

    Only the B requested windows are materialised: the windows are strided views of `scaled`.

    Args:
        scaled: readings divided by their series' scale, shape (T,).
        cal: `calendar()` of the same T timestamps.
        ends: positions of each window's last observed reading (the forecast origin).
        config: the feature configuration.
        targets: also return the next `horizon` readings relative to the last one.
    """
    ends = np.asarray(ends, dtype=np.int64)
    first = ends - (config.window - 1)
    last = scaled[ends][:, None]
    values = sliding_window_view(scaled, config.window)[first] - last
    x = np.empty((len(ends), config.window, config.n_inputs), dtype=np.float32)
    if config.masked:
        present = np.isfinite(values)
        x[:, :, 0] = np.where(present, values, 0.0)
        x[:, :, -1] = present
    else:
        x[:, :, 0] = values
    if cal.shape[1]:
        windows = sliding_window_view(cal, config.window, axis=0)[first]
        x[:, :, 1 : 1 + cal.shape[1]] = windows.transpose(0, 2, 1)
    if not targets:
        return x, None
    y = sliding_window_view(scaled, config.horizon)[ends + 1] - last
    return x, y.astype(np.float32)


def to_values(relative: np.ndarray, last_value: np.ndarray | float, scale: float) -> np.ndarray:
    """Network outputs (..., horizon) back to readings, given the last observed reading."""
    return np.asarray(last_value, dtype=np.float64)[..., None] + scale * relative.astype(np.float64)


def training_seasonal(
    values: np.ndarray, train_stop: int, config: FeatureConfig, timestamps: pd.DatetimeIndex | None = None
) -> np.ndarray:
    """Seasonal component of a whole series from one MSTL fit on its training part, extended.

    Training windows read the in-sample fit (the cleanest deseasonalised series to learn from);
    the validation loss reads its extension, which is cheap and blind to the validation part.
    Sub-daily series of a local time zone are fitted on their wall-clock grid, as serving does.
    """
    if config.timezone != "UTC" and config.steps_per_day > 1 and timestamps is not None and len(values) > 1:
        step_ns = int(timestamps.asi8[1] - timestamps.asi8[0])
        slots = wall_slots(int(timestamps.asi8[0]), step_ns, len(values), config.timezone)
        local, ahead = on_wall_clock(values[:train_stop], slots)
        periods = _usable_periods(config.seasonal_periods, len(local))
        on_slots: np.ndarray = extend(decompose(local, periods), periods, ahead)[slots]
        return on_slots
    periods = _usable_periods(config.seasonal_periods, train_stop)
    components = decompose(values[:train_stop], periods)
    return extend(components, periods, len(values) - train_stop)


def origin_batch(
    values: np.ndarray,
    cal: np.ndarray,
    timestamps: pd.DatetimeIndex,
    ends: np.ndarray,
    scale: float,
    config: FeatureConfig,
    fitter: SeasonalFitter | PathFitter | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs (B, window, F) at forecast origins `ends`, and the base (B, horizon) that the
    network's rescaled output is added to: the forecast is `base + scale * output`.

    This is how both training's evaluation and serving forecast: a deseasonalised model refits the
    seasonal component on the data before each origin (`fitter`), exactly as serving does.
    """
    ends = np.asarray(ends, dtype=np.int64)
    if fitter is None or not config.deseasonalized:
        x, _ = window_batch(values / scale, cal, ends, config, targets=False)
        return x, np.repeat(values[ends][:, None], config.horizon, axis=1)
    x = np.empty((len(ends), config.window, config.n_inputs), dtype=np.float32)
    base = np.empty((len(ends), config.horizon))
    local_end = np.array([config.window - 1])
    for i, end in enumerate(ends.tolist()):
        first = end - config.window + 1
        seasonal = fitter.around(values, timestamps, end, config.window, config.horizon)
        z = values[first : end + 1] - seasonal[: config.window]
        x[i] = window_batch(z / scale, cal[first : end + 1], local_end, config, targets=False)[0][0]
        base[i] = seasonal[config.window :] + z[-1]
    return x, base
