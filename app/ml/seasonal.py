"""Seasonal decomposition (MSTL) fitted on the readings before a forecast origin.

A window model forecasts the deseasonalised series Z = y - seasonal; the forecast adds the seasonal
component extended over the horizon back on. The seasonal estimate does most of the work on
electricity demand (an MSTL profile plus the last deseasonalised level is already a strong
forecast), so it is refitted as serving would refit it: on the data before each origin.

MSTL here is R's forecast::mstl as statsforecast implements it (STL per period, shortest period
first, two passes, `seasonal_deg=0`, seasonal windows 7 + 4k), with STL's jump parameters at 10%
of each smoother's span: Cleveland et al.'s speed-up, ~20x faster at the same accuracy on the
half-hourly benchmark (a fit on 8 weeks of half-hourly readings takes ~50 ms instead of ~800 ms).

Never imports TensorFlow: the forecaster calls it at serving time.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

DAYS_PER_WEEK = 7
DAYS_PER_YEAR = 365
DAYS_PER_YEAR_MEAN = 365.25
# Fit on at most this many of the longest periods before the origin: older weeks barely move the
# profile (8 weeks: MASE 0.536 vs 0.525 on all 9 weeks of the benchmark, 6 weeks: 0.550,
# 4 weeks: 0.645) and the fit cost grows with the length.
FIT_SEASONS = 12
# A period is fitted only when the fitted data covers it at least this many times.
MIN_CYCLES = 2
MSTL_PASSES = 2
JUMP_FRACTION = 0.1
CACHE_FITS = 64


def candidate_periods(steps_per_day: float) -> tuple[int, ...]:
    """One day and one week of readings for sub-daily data; the week and the year for daily data;
    the year for longer steps (weekly: 52, monthly: 12, quarterly: 4). `usable_periods` drops a
    period the fitted history does not cover twice, such as the year of daily data under two years.
    """
    if steps_per_day > 1:
        day = round(steps_per_day)
        return (day, DAYS_PER_WEEK * day)
    if steps_per_day == 1:
        return (DAYS_PER_WEEK, DAYS_PER_YEAR)
    year = round(DAYS_PER_YEAR_MEAN * steps_per_day)
    return (year,) if year >= 2 else ()


def usable_periods(periods: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The periods that `n` readings cover at least `MIN_CYCLES` times."""
    return tuple(p for p in periods if p >= 2 and MIN_CYCLES * p <= n)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Linear interpolation over every NaN (STL needs a complete series); edges take the nearest."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    if not missing.any():
        return values
    positions = np.arange(len(values))
    filled: npt.NDArray[np.float64] = np.interp(positions, positions[~missing], values[~missing])
    return filled


def _odd(x: float) -> int:
    n = int(np.ceil(x))
    return n if n % 2 else n + 1


def decompose(values: np.ndarray, periods: tuple[int, ...]) -> np.ndarray:
    """Seasonal components (len(periods), n) of `values` by MSTL; NaNs are interpolated first."""
    from statsmodels.tsa.seasonal import STL  # deferred: ~0.3 s to import

    y = fill_gaps(values)
    seasonal = np.zeros((len(periods), len(y)))
    if not periods:
        return seasonal
    deseasonalised = y.copy()
    for _ in range(MSTL_PASSES if len(periods) > 1 else 1):
        for i, period in enumerate(periods):
            deseasonalised = deseasonalised + seasonal[i]
            seasonal_span = 7 + 4 * (i + 1)
            trend_span = _odd(1.5 * period / (1 - 1.5 / seasonal_span))
            low_pass_span = _odd(period)
            fit = STL(
                deseasonalised,
                period=period,
                seasonal=seasonal_span,
                seasonal_deg=0,
                seasonal_jump=max(1, int(JUMP_FRACTION * seasonal_span)),
                trend_jump=max(1, int(JUMP_FRACTION * trend_span)),
                low_pass_jump=max(1, int(JUMP_FRACTION * low_pass_span)),
            ).fit()
            seasonal[i] = fit.seasonal
            deseasonalised = deseasonalised - seasonal[i]
    return seasonal


def extend(components: np.ndarray, periods: tuple[int, ...], ahead: int) -> np.ndarray:
    """The summed seasonal component over the fitted readings and `ahead` steps after them.

    Each component repeats its last fitted cycle.
    """
    n = components.shape[1]
    out = np.zeros(n + ahead)
    for component, period in zip(components, periods, strict=True):
        out[:n] += component
        if ahead:
            out[n:] += component[n - period :][np.arange(ahead) % period]
    return out


def wall_slots(first_ns: int, step_ns: int, n: int, timezone: str) -> np.ndarray:
    """Position of each of `n` readings every `step_ns` from `first_ns` (UTC) on the local
    wall-clock grid of `timezone`: the spring-forward hour skips slots, the repeated autumn hour
    lands on the slots it repeats."""
    utc = pd.DatetimeIndex(first_ns + step_ns * np.arange(n, dtype=np.int64), tz="UTC")
    wall = utc.tz_convert(timezone).tz_localize(None).asi8
    slots: npt.NDArray[np.int64] = (wall - wall[0]) // step_ns
    return slots


def on_wall_clock(history: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, int]:
    """`history` laid on its wall-clock slots (the mean where an hour repeats, NaN where one is
    skipped, which `decompose` interpolates), and how many slots the rest of `slots` reaches past
    it. A daily season fitted there keeps 08:00 at 08:00 across a daylight-saving change."""
    n = len(history)
    known = ~np.isnan(history)
    size = int(slots[:n].max()) + 1
    sums = np.bincount(slots[:n][known], weights=history[known], minlength=size)
    counts = np.bincount(slots[:n][known], minlength=size)
    local = np.full(size, np.nan)
    local[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return local, max(0, int(slots.max()) + 1 - size)


@dataclass(frozen=True)
class SeasonalConfig:
    """How a window model deseasonalises: the periods it fits and how much history a fit reads."""

    periods: tuple[int, ...]
    fit_steps: int
    steps_per_day: float
    timezone: str = "UTC"

    @property
    def refit_steps(self) -> int:
        """Readings between refits at most: one day (every reading for daily data)."""
        return max(1, round(self.steps_per_day))

    @property
    def context_steps(self) -> int:
        """Readings a forecast needs: the fit's history plus the day since the last refit."""
        return self.fit_steps + self.refit_steps


@dataclass(frozen=True)
class SeasonalCycles:
    """One fit's seasonal component from its boundary on, as the last fitted cycle per period.

    The fit reads the readings before a boundary; the component at `k` steps after it (k >= 0,
    and k >= -period for the in-sample readings just before) is the sum over periods of
    `cycle[k mod period]`, exactly what `extend` continues. A few hundred numbers: a stream
    model's whole seasonal knowledge for a day, stored once per series and shared by its streams.
    """

    cycles: tuple[np.ndarray, ...]

    def at(self, offsets: np.ndarray) -> np.ndarray:
        """The component at `offsets` steps after the boundary (any integer array shape)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        out = np.zeros(offsets.shape)
        for cycle in self.cycles:
            out += cycle[offsets % len(cycle)]
        return out

    def value_at(self, offset: int) -> float:
        """`at` of one offset, without numpy's per-call overhead (the same sum, in the same order)."""
        total = 0.0
        for cycle in self.cycles:
            total += float(cycle[offset % len(cycle)])
        return total

    def shifted(self, steps: int) -> SeasonalCycles:
        """The same component read from a boundary `steps` later: `shifted(s).at(k) == at(k + s)`."""
        return SeasonalCycles(tuple(np.roll(cycle, -(steps % len(cycle))) for cycle in self.cycles))

    @property
    def periods(self) -> tuple[int, ...]:
        return tuple(len(cycle) for cycle in self.cycles)

    @property
    def nbytes(self) -> int:
        """The bytes its numbers take (a cache bounds itself by them)."""
        return sum(cycle.nbytes for cycle in self.cycles)


# -- stored form ----------------------------------------------------------------------------
# A version byte, the number of cycles, then per cycle its length and its float32 numbers: ~1.5 KB
# for a half-hourly fit, read back with no parsing. The JSON lists of float64 stored before it
# (~7 KB of text, and ~12 KB of Python floats per fit once parsed: a fleet's bulk post of 10,000
# streams peaked at ~150 MB, bench/fit_memory.py) still read. Float32, not float64: a fit is
# rounded to it when made (`SeasonalFitter.cycles_before`), so every reader sees the same
# numbers; its error, ~1e-7 of the component, is far below what a day's refit moves it.
FIT_FORMAT_VERSION = 1
_FIT_HEADER = struct.Struct("<BB")
_CYCLE_LENGTH = struct.Struct("<I")


def encode_cycles(fit: SeasonalCycles) -> bytes:
    """The compact binary form of a fit."""
    parts = [_FIT_HEADER.pack(FIT_FORMAT_VERSION, len(fit.cycles))]
    for cycle in fit.cycles:
        parts += [_CYCLE_LENGTH.pack(len(cycle)), np.ascontiguousarray(cycle, dtype="<f4").tobytes()]
    return b"".join(parts)


def decode_cycles(stored: bytes | memoryview | str | list[list[float]]) -> SeasonalCycles:
    """A fit from its binary form, or from the JSON lists (parsed, or as text or bytes) of rows
    stored before it.

    Raises ValueError for anything else.
    """
    if isinstance(stored, list):
        return SeasonalCycles(tuple(np.asarray(cycle, dtype=np.float64) for cycle in stored))
    data = stored.encode() if isinstance(stored, str) else bytes(stored)
    if data[:1] in (b"[", b" "):
        return decode_cycles(orjson.loads(data))
    try:
        version, count = _FIT_HEADER.unpack_from(data)
        if version != FIT_FORMAT_VERSION:
            raise ValueError(f"Received a stored seasonal fit of format {version}, expected "
                             f"format {FIT_FORMAT_VERSION}.")
        offset, cycles = _FIT_HEADER.size, []
        for _ in range(count):
            (length,) = _CYCLE_LENGTH.unpack_from(data, offset)
            offset += _CYCLE_LENGTH.size
            if offset + 4 * length > len(data):
                raise ValueError(f"Received a stored seasonal fit of {len(data)} bytes, cut short.")
            cycles.append(np.frombuffer(data, dtype="<f4", count=length, offset=offset))
            offset += 4 * length
    except struct.error as exc:
        raise ValueError(f"Received a stored seasonal fit that cannot be read: {exc}") from None
    if offset != len(data):
        raise ValueError(f"Received a stored seasonal fit of {len(data)} bytes, expected {offset}.")
    return SeasonalCycles(tuple(cycles))


class SeasonalFitter:
    """Seasonal components around forecast origins, refitted once a day, with a small cache.

    The fit at origin `end` reads the `fit_steps` readings before the start of the day of the
    first forecast step (for daily data: every reading up to `end`). Every forecast made during a
    day therefore shares one fit, which makes batch and reading-by-reading forecasts identical
    and costs one fit per series and day; the protocol's midnight origins get a fit on all the
    data before them.
    """

    def __init__(self, config: SeasonalConfig) -> None:
        self.config = config
        self._cache: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()

    def fit_stop(self, timestamps: pd.DatetimeIndex, end: int) -> int:
        """Position after the last reading a fit at origin `end` may read."""
        if self.config.refit_steps == 1:
            return end + 1
        step = timestamps[1] - timestamps[0] if len(timestamps) > 1 else pd.Timedelta(0)
        first_forecast = timestamps[end] + step
        if first_forecast.tz is None:
            first_forecast = first_forecast.tz_localize("UTC")
        # The day of the series' local clock: a refit at local midnight, also across DST.
        boundary = first_forecast.tz_convert(self.config.timezone).floor("D", ambiguous=True,
                                                                         nonexistent="shift_forward")
        return int(min(end + 1, np.searchsorted(timestamps.asi8, boundary.value, side="left")))

    def around(
        self, values: np.ndarray, timestamps: pd.DatetimeIndex, end: int, before: int, ahead: int
    ) -> np.ndarray:
        """Seasonal component at positions [end - before + 1, end + ahead] (before + ahead values)."""
        stop = self.fit_stop(timestamps, end)
        start = max(0, stop - self.config.fit_steps)
        if end - before + 1 < start:
            raise ValueError(
                f"Received a window of {before} readings, expected at most the {self.config.fit_steps} "
                "readings a seasonal fit reads."
            )
        slots = None
        if self.config.timezone != "UTC" and self.config.refit_steps > 1 and len(timestamps) > 1:
            step_ns = int(timestamps.asi8[1] - timestamps.asi8[0])
            slots = wall_slots(int(timestamps.asi8[start]), step_ns, end + ahead + 1 - start,
                               self.config.timezone)
        path = self._path(values[start:stop], end + ahead + 1 - stop, slots)
        return path[end - before + 1 - start :]

    def cycles_before(self, values: np.ndarray, stop: int) -> SeasonalCycles:
        """The fit on the `fit_steps` readings before position `stop`, as cycles."""
        history = values[max(0, stop - self.config.fit_steps) : stop]
        components, periods = self._components(history)
        n = len(history)
        # Float32: what the fit is stored as (`encode_cycles`), so a fit read back is the one made.
        return SeasonalCycles(
            tuple(
                component[n - period :].astype(np.float32)
                for component, period in zip(components, periods, strict=True)
            )
        )

    def _path(self, history: np.ndarray, ahead: int, slots: np.ndarray | None = None) -> np.ndarray:
        """The seasonal path over `history` and `ahead` steps; with `slots`, fitted on the local
        wall-clock grid (`on_wall_clock`)."""
        if slots is not None:
            local, ahead_local = on_wall_clock(history, slots)
            on_slots: np.ndarray = self._path(local, ahead_local)[slots]
            return on_slots
        components, periods = self._components(history)
        return extend(components, periods, ahead)

    def _components(self, history: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        periods = usable_periods(self.config.periods, len(history))
        history = np.ascontiguousarray(history, dtype=np.float64)
        key = (hashlib.blake2b(history.tobytes(), digest_size=16).hexdigest(), len(history), len(periods))
        components = self._cache.get(key)
        if components is None:
            components = decompose(history, periods)
            self._cache[key] = components
            if len(self._cache) > CACHE_FITS:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return components, periods
