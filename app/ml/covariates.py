"""Covariates: other series (temperature) put on a target series' grid, NaN where not covered.

The contract with the API (cov-api): a series names its covariates (`CovariateSpec`); the API
loads each covariate series' readings and calls `align` to put them on the target's grid, for
training (`SeriesData.covariates`) and for serving (`Forecaster.forecast(covariates=...)`, history
and horizon together). Readings of a covariate past the target's last reading are its forecast.
When a forecast's horizon runs past what a covariate covers, `require_covered` raises
`CovariateCoverageError`, whose `covered_until_s` is what the 422 names; `covered_until` gives the
same for a covariate's raw readings.

Alignment rule: a grid time that is a reading's time takes that reading; any other grid time
takes the linear interpolation of the two readings either side of it, if they are at most
`max_gap_s` apart (default: the covariate's own step, the median spacing of its readings); else
NaN. So hourly temperature under half-hourly load gives every half hour (the :30 the mean of the
two hours around it), a missing hour of temperature leaves the grid times around it NaN, and
nothing past the last reading is ever extrapolated. A covariate finer than the grid is sampled
at the grid's times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CovariateSpec:
    """One covariate of a series: its name in models and requests, and whether its values for
    the forecast steps are known when forecasting (a weather forecast: True)."""

    name: str
    known_future: bool = True


class CovariateCoverageError(ValueError):
    """A covariate does not cover every grid time a forecast needs."""

    def __init__(self, name: str, covered_until_s: float | None, needed_until_s: float) -> None:
        self.name = name
        self.covered_until_s = covered_until_s
        self.needed_until_s = needed_until_s
        until = "no time at all" if covered_until_s is None else f"until {_iso(covered_until_s)}"
        super().__init__(
            f"Covariate {name!r} covers {until}; the forecast needs it on every step until "
            f"{_iso(needed_until_s)}."
        )


def _iso(ts_s: float) -> str:
    return str(np.datetime64(round(ts_s), "s"))


def native_step_s(ts_s: np.ndarray) -> float | None:
    """A covariate's own step: the median spacing of its readings (None for fewer than two)."""
    ts_s = np.asarray(ts_s, dtype=np.float64)
    if len(ts_s) < 2:
        return None
    return float(np.median(np.diff(ts_s)))


def align(
    ts_s: np.ndarray, values: np.ndarray, grid_s: np.ndarray, *, max_gap_s: float | None = None
) -> np.ndarray:
    """A covariate's readings at (`ts_s`, `values`) on the grid times `grid_s`, all in seconds
    since the epoch; NaN where not covered (see the module's rule).

    Args:
        ts_s: reading times, strictly increasing.
        values: readings; NaN readings count as missing.
        grid_s: the target's grid times.
        max_gap_s: the widest spacing interpolated across (default: the covariate's step).

    Raises:
        ValueError: `ts_s` and `values` differ in length, or `ts_s` is not strictly increasing.
    """
    ts_s = np.asarray(ts_s, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    grid_s = np.asarray(grid_s, dtype=np.float64)
    if ts_s.shape != values.shape or ts_s.ndim != 1:
        raise ValueError(
            f"Received {ts_s.shape} covariate times and {values.shape} values, expected one time per value."
        )
    if len(ts_s) > 1 and not np.all(np.diff(ts_s) > 0):
        raise ValueError("Received covariate times that are not strictly increasing.")
    keep = np.isfinite(values)
    step_s = native_step_s(ts_s)
    ts_s, values = ts_s[keep], values[keep]
    out = np.full(grid_s.shape, np.nan)
    if len(ts_s) == 0:
        return out
    gap_s = max_gap_s if max_gap_s is not None else step_s
    right = np.searchsorted(ts_s, grid_s, side="left")
    exact = (right < len(ts_s)) & (ts_s[np.minimum(right, len(ts_s) - 1)] == grid_s)
    out[exact] = values[right[exact]]
    inside = ~exact & (right > 0) & (right < len(ts_s))
    if gap_s is not None and inside.any():
        hi = right[inside]
        lo = hi - 1
        spacing = ts_s[hi] - ts_s[lo]
        weight = (grid_s[inside] - ts_s[lo]) / spacing
        interpolated = values[lo] + weight * (values[hi] - values[lo])
        # A relative tolerance: float seconds of a 2030 epoch round at ~1e-7 s.
        interpolated[spacing > gap_s * (1 + 1e-9)] = np.nan
        out[inside] = interpolated
    return out


def covered_until(ts_s: np.ndarray, values: np.ndarray) -> float | None:
    """The time (s) of a covariate's last present reading; None when it has none."""
    ts_s = np.asarray(ts_s, dtype=np.float64)
    present = np.isfinite(np.asarray(values, dtype=np.float64))
    return float(ts_s[present][-1]) if present.any() else None


def require_covered(name: str, aligned: np.ndarray, grid_s: np.ndarray) -> None:
    """Raise `CovariateCoverageError` unless `aligned` (on `grid_s`) has a value at every time.

    `covered_until_s` is the last grid time before the first missing value (None when the first
    is missing): what the forecast could have used.
    """
    aligned = np.asarray(aligned, dtype=np.float64)
    grid_s = np.asarray(grid_s, dtype=np.float64)
    if len(aligned) != len(grid_s):
        raise ValueError(
            f"Received covariate {name!r} with {len(aligned)} values, expected {len(grid_s)} "
            "(one per grid step)."
        )
    missing = np.flatnonzero(~np.isfinite(aligned))
    if len(missing):
        first = int(missing[0])
        raise CovariateCoverageError(name, float(grid_s[first - 1]) if first else None, float(grid_s[-1]))
