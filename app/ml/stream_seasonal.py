"""Deseasonalised stream models: every reading is read against a seasonal fit made before its day.

A stream (stateful) model steps once per reading, so whatever it reads must be known when the
reading arrives. Its input is the change of the deseasonalised series z = y - s, where s comes
from the MSTL fit on the readings before the start of the reading's day (daily data: before the
reading itself). That is one fit per series and day, which serving makes once and every stream
of the series shares.

The forecast at origin t is `y_t + (S(t+k) - S(t)) + scale * output_k`: the network forecasts
the change of z, and S, the fit whose boundary is the day of the first forecast step, puts the
seasonal profile back. Training builds inputs and targets with exactly these fits (`stream_arrays`),
so the network learns what serving will ask of it.

Never imports TensorFlow: the forecaster uses it at serving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.ml.seasonal import SeasonalCycles, SeasonalFitter
from app.timegrid import NS_PER_DAY, NS_PER_S

# Fits are made ahead, by the workers: the fit read on local day D reads the readings up to
# FIT_LEAD_S before D begins (daily and longer steps: up to the step before the reading's), shifted
# to start at D, so a worker can make it during the last FIT_LEAD_S of the day before. The lead
# trades accuracy against the time a fleet's fits have to be made in: on Taylor a lead of 1 to 3
# hours costs nothing measurable, 4 to 6 hours +3.3% one-step MASE, a day +4.2%
# (bench/fit_cutoff.py, docs/benchmarks.md).
FIT_LEAD_S = 3 * 3600


def boundaries(
    timestamps: pd.DatetimeIndex | np.ndarray, steps_per_day: float, timezone: str = "UTC"
) -> np.ndarray:
    """The boundary (int64 ns, UTC) of the fit each timestamp is read against: the start of its
    day on the series' local clock, so refits follow local midnight across DST (daily data: the
    timestamp itself). A naive index, or an array of int64 nanoseconds, is UTC."""
    if isinstance(timestamps, np.ndarray):
        timestamps = timestamps if steps_per_day <= 1 or timezone == "UTC" else pd.DatetimeIndex(timestamps)
    if steps_per_day <= 1:
        return np.asarray(timestamps if isinstance(timestamps, np.ndarray) else timestamps.asi8)
    if isinstance(timestamps, np.ndarray) or (timezone == "UTC" and timestamps.tz is None):
        # Integer arithmetic: pandas' floor costs ~1 ms a call, more than a cell step.
        ns = np.asarray(timestamps if isinstance(timestamps, np.ndarray) else timestamps.asi8)
        day_start_ns: npt.NDArray[np.int64] = ns - ns % NS_PER_DAY
        return day_start_ns
    aware = timestamps if timestamps.tz is not None else timestamps.tz_localize("UTC")
    local = aware.tz_convert(timezone).floor("D", ambiguous=True, nonexistent="shift_forward")
    return np.asarray(local.asi8)


def fit_cutoff_ns(boundary_ns: int, steps_per_day: float, step_ns: int,
                  lead_s: int = FIT_LEAD_S) -> int:
    """Where the readings that the fit for `boundary_ns` reads end: `lead_s` before it, rounded
    out to whole steps (daily data and longer steps: one step before, with any lead)."""
    if lead_s <= 0:
        return boundary_ns
    if steps_per_day <= 1:
        return boundary_ns - step_ns
    lead_steps = -(-lead_s * NS_PER_S // step_ns)
    return boundary_ns - lead_steps * step_ns


def due_fit_boundaries(newest_ns: int, step_ns: int, steps_per_day: float, timezone: str,
                       lead_s: int = FIT_LEAD_S) -> list[int]:
    """The fits (boundaries, int64 ns) that a series whose newest reading is at `newest_ns` can
    have made now: the one its next reading reads, and the one of the local day after it once
    the readings that fit reads are all in (from `lead_s` before that day's midnight)."""
    following = newest_ns + step_ns
    bounds = boundaries(np.array([following, following + NS_PER_DAY]), steps_per_day, timezone)
    return sorted({int(b) for b in bounds
                   if fit_cutoff_ns(int(b), steps_per_day, step_ns, lead_s) <= following})


def fit_ahead(fitter: SeasonalFitter, history: np.ndarray, boundary_ns: int, cutoff_ns: int,
              step_ns: int) -> SeasonalCycles:
    """The fit for `boundary_ns` from `history`, the readings on the grid up to `cutoff_ns`."""
    return fitter.cycles_before(history, len(history)).shifted((boundary_ns - cutoff_ns) // step_ns)


class SeasonalSource(Protocol):
    """Where the seasonal fits come from: the history at hand, or fits stored per series and day."""

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        """The fit on the readings before `boundary_ns` (nanoseconds since the epoch)."""
        ...


class _NoSeason:
    """The seasonal source of a raw stream model: no seasonal component at all."""

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        return SeasonalCycles(())


NO_SEASON: SeasonalSource = _NoSeason()


class HistorySeasonal:
    """Fits made from a block of history on the grid (training, and forecasts from history)."""

    def __init__(self, values: np.ndarray, timestamps: pd.DatetimeIndex, fitter: SeasonalFitter,
                 lead_s: int = FIT_LEAD_S) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.ns = pd.DatetimeIndex(timestamps).asi8
        self.step_ns = int(self.ns[1] - self.ns[0]) if len(self.ns) > 1 else 0
        self.fitter = fitter
        self.lead_s = lead_s
        self._fits: dict[int, SeasonalCycles] = {}

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        fit = self._fits.get(boundary_ns)
        if fit is None:
            config = self.fitter.config
            cutoff = fit_cutoff_ns(boundary_ns, config.steps_per_day, self.step_ns, self.lead_s)
            stop = int(np.searchsorted(self.ns, cutoff, side="left"))
            fit = self._fits[boundary_ns] = fit_ahead(self.fitter, self.values[:stop],
                                                      boundary_ns, cutoff, self.step_ns)
        return fit


def _by_fit(
    source: SeasonalSource, timestamps: pd.DatetimeIndex, bounds: np.ndarray, step: pd.Timedelta
) -> list[tuple[np.ndarray, np.ndarray, SeasonalCycles]]:
    """Per distinct boundary: which timestamps it covers, their steps after it, and its fit."""
    steps = (np.asarray(timestamps.asi8) - bounds) // step.value
    if len(bounds) and bounds[0] == bounds[-1]:  # the common case: one day
        return [(np.ones(len(bounds), dtype=bool), steps, source.cycles(int(bounds[0])))]
    unique = np.unique(bounds)
    return [(bounds == b, steps[bounds == b], source.cycles(int(b))) for b in unique]


def seasonal_at(
    source: SeasonalSource, timestamps: pd.DatetimeIndex, bounds: np.ndarray, step: pd.Timedelta
) -> tuple[np.ndarray, np.ndarray]:
    """The component at each timestamp from the fit of its boundary, and how many periods it had."""
    out = np.empty(len(timestamps))
    periods = np.empty(len(timestamps), dtype=np.int64)
    for mine, steps, fit in _by_fit(source, timestamps, bounds, step):
        out[mine] = fit.at(steps)
        periods[mine] = len(fit.cycles)
    return out, periods


def seasonal_ahead(
    source: SeasonalSource,
    timestamps: pd.DatetimeIndex,
    step: pd.Timedelta,
    horizon: int,
    steps_per_day: float,
    timezone: str = "UTC",
) -> tuple[np.ndarray, np.ndarray]:
    """S(t+k) - S(t) for k = 1..horizon at each origin t, with S the fit of t's first forecast
    step; and how many periods that fit had. Shapes (T, horizon) and (T,)."""
    bounds = boundaries(timestamps + step, steps_per_day, timezone)
    out = np.empty((len(timestamps), horizon))
    periods = np.empty(len(timestamps), dtype=np.int64)
    ahead = np.arange(horizon + 1)
    for mine, steps, fit in _by_fit(source, timestamps, bounds, step):
        path = fit.at(steps[:, None] + ahead[None, :])
        out[mine] = path[:, 1:] - path[:, :1]
        periods[mine] = len(fit.cycles)
    return out, periods


@dataclass(frozen=True)
class StreamArrays:
    """What a deseasonalised stream model reads and learns at every position of one series.

    Attributes:
        z: the deseasonalised readings (NaN where unknown).
        ahead: S(t+k) - S(t), (T, horizon), in the series' units.
        targets: (y[t+k] - y[t] - ahead) / scale, NaN past the end or over missing readings.
        usable: positions whose reading and both fits are known, with every period the
            training part supports (earlier fits, on less history, see a different profile).
    """

    z: np.ndarray
    ahead: np.ndarray
    targets: np.ndarray
    usable: np.ndarray


def stream_arrays(
    values: np.ndarray,
    timestamps: pd.DatetimeIndex,
    scale: float,
    horizon: int,
    steps_per_day: float,
    source: SeasonalSource,
    min_periods: int,
    timezone: str = "UTC",
) -> StreamArrays:
    """Inputs and targets at every position, each reading against the fit made before its day:
    exactly what serving computes, reading by reading."""
    step = timestamps[1] - timestamps[0]
    bounds = boundaries(timestamps, steps_per_day, timezone)
    s, periods_in = seasonal_at(source, timestamps, bounds, step)
    ahead, periods_out = seasonal_ahead(source, timestamps, step, horizon, steps_per_day, timezone)
    usable = ~np.isnan(values) & (periods_in >= min_periods) & (periods_out >= min_periods)
    return _arrays(values, s, ahead, scale, usable)


def in_sample_arrays(values: np.ndarray, seasonal: np.ndarray, scale: float, horizon: int) -> StreamArrays:
    """Inputs and targets against one seasonal path over the whole series (a fit on the training
    part, extended past it): the cleanest deseasonalised series to learn from.

    Learning from daily refits instead, as serving reads them, scored MASE 0.562 against 0.526 on
    the half-hourly benchmark: the early refits see two or three weeks and add noise to z.
    """
    padded = np.concatenate([seasonal, np.full(horizon, np.nan)])
    ahead = _following(padded, horizon, len(values)) - seasonal[:, None]
    return _arrays(values, seasonal, ahead, scale, ~np.isnan(values))


def _following(padded: np.ndarray, horizon: int, n: int) -> np.ndarray:
    """(n, horizon): the `horizon` values after each of the first n positions."""
    return np.lib.stride_tricks.sliding_window_view(padded[1:], horizon)[:n]


def _arrays(
    values: np.ndarray, seasonal: np.ndarray, ahead: np.ndarray, scale: float, usable: np.ndarray
) -> StreamArrays:
    horizon = ahead.shape[1]
    future = _following(np.concatenate([values, np.full(horizon, np.nan)]), horizon, len(values))
    targets = (future - values[:, None] - ahead) / scale
    return StreamArrays(z=values - seasonal, ahead=ahead, targets=targets.astype(np.float32), usable=usable)


def change_inputs(z: np.ndarray, scale: float, previous: float | None) -> np.ndarray:
    """Each reading's change of z since the previous one, scaled; 0 for a stream's first."""
    return np.diff(z / scale, prepend=(z[0] if previous is None else previous) / scale)
