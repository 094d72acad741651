"""A regression profile of demand: day type x time of day, the year, and covariate terms.

Models that read covariates (temperature) read this profile, with the series' holidays in its
day types, where the others read a daily MSTL fit: the stream model forecasts
`last + (P(t+k) - P(t)) + scale * output`, which re-levels at every origin, and the network
learns what the profile misses. The
profile is fitted once on the training part by least squares and stored in the artifact, so
serving evaluates it with numpy and fits nothing on the request path.

The terms, in the spirit of Tao Hong's "vanilla" load benchmark:
- one level per day type (`calendar.DayType`) and time of day;
- the season of the year: three annual Fourier pairs (when the training part spans a year);
- a linear trend (the utility's growth; re-levelling makes its extrapolation harmless);
- with a year of training data, a month x time-of-day shift (the daily shape follows daylight);
- per covariate, standardised on the training part: a cubic in its value per time of day and
  per month (per month only with a year of training data), a quadratic in its mean over the
  past day per time of day (buildings store heat: yesterday's temperature still moves demand),
  and quadratics in its values over the past three hours.

A missing covariate reading (NaN) is never invented: that covariate's terms contribute their
training mean at that time of day instead. The forecast horizon must be covered; the caller
checks that with `covariates.require_covered` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.ml.calendar import N_DAY_TYPES, CalendarSpec, day_types
from app.ml.seasonal import SeasonalCycles
from app.timegrid import NS_PER_DAY

NS_PER_YEAR = int(365.25 * NS_PER_DAY)
FOURIER_PAIRS = 3
MONTHS = 12
POLY_DEGREE = 3
RECENT_DEGREE = 2
# Lagged covariate values over the past eighth of a day (3 hours), each as a quadratic: the
# response lags the weather by an hour or two.
LAG_SHARE_OF_DAY = 1 / 8
# A tiny ridge, relative to the mean diagonal of X'X: keeps the solve defined when a day type
# never occurs in the training part (a series with no holiday yet), without shrinking anything.
RIDGE = 1e-8


def _slot_count(steps_per_day: float) -> int:
    return max(1, round(steps_per_day))


@dataclass(frozen=True)
class ProfileTerms:
    """Which terms a profile has; fixed at fitting from the training part's span."""

    steps_per_day: float
    step_ns: int
    timezone: str
    covariates: tuple[str, ...]
    annual: bool
    trend_origin_ns: int

    @property
    def slots(self) -> int:
        return _slot_count(self.steps_per_day)


def _local_ns(ns: np.ndarray, timezone: str) -> np.ndarray:
    if timezone == "UTC":
        return ns
    local_ns: np.ndarray = pd.DatetimeIndex(ns, tz="UTC").tz_convert(timezone).tz_localize(None).asi8
    return local_ns


def _one_hot(index: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(index), size))
    out[np.arange(len(index)), index] = 1.0
    return out


def _interact(columns: np.ndarray, one_hot: np.ndarray) -> np.ndarray:
    interacted: np.ndarray = (columns[:, :, None] * one_hot[:, None, :]).reshape(len(columns), -1)
    return interacted


def _recent_mean(x: np.ndarray, steps: int) -> np.ndarray:
    """The mean over the past `steps` readings (fewer at the start), NaN-aware."""
    means: np.ndarray = pd.Series(x).rolling(max(1, steps), min_periods=1).mean().to_numpy()
    return means


def _base_columns(
    ns: np.ndarray, terms: ProfileTerms, calendar: CalendarSpec | None
) -> tuple[np.ndarray, np.ndarray]:
    """The calendar terms (T, p) and each reading's slot of the day."""
    local = _local_ns(ns, terms.timezone)
    slot = ((local % NS_PER_DAY) * terms.slots // NS_PER_DAY).astype(np.int64)
    kinds = day_types(pd.DatetimeIndex(local), calendar).astype(np.int64)
    columns = [_one_hot(kinds * terms.slots + slot, N_DAY_TYPES * terms.slots)]
    if terms.annual:
        angle = 2 * np.pi * (local % NS_PER_YEAR) / NS_PER_YEAR
        harmonics = [f(k * angle) for k in range(1, FOURIER_PAIRS + 1) for f in (np.sin, np.cos)]
        columns.append(np.stack(harmonics, axis=1))
        # The daily shape follows daylight through the year: a month x time-of-day shift (the
        # first cell is the day-type levels' reference, left out so the terms stay identifiable).
        month = pd.DatetimeIndex(local).month.to_numpy() - 1
        columns.append(_one_hot(month * terms.slots + slot, MONTHS * terms.slots)[:, 1:])
    columns.append(((ns - terms.trend_origin_ns) / NS_PER_YEAR)[:, None])
    return np.concatenate(columns, axis=1), slot


def _covariate_columns(
    standardised: np.ndarray, slot_hot: np.ndarray, month_hot: np.ndarray | None, steps_per_day: int
) -> np.ndarray:
    powers = np.stack([standardised**d for d in range(1, POLY_DEGREE + 1)], axis=1)
    recent = _recent_mean(standardised, steps_per_day)
    recent_powers = np.stack([recent**d for d in range(1, RECENT_DEGREE + 1)], axis=1)
    columns = [_interact(powers, slot_hot), _interact(recent_powers, slot_hot)]
    for lag in range(1, max(1, round(steps_per_day * LAG_SHARE_OF_DAY)) + 1):
        lagged = np.concatenate([np.full(lag, np.nan), standardised[:-lag]])
        lagged[:lag] = standardised[:lag]
        columns.append(np.stack([lagged, lagged**2], axis=1))
    if month_hot is not None:
        columns.append(_interact(powers, month_hot))
    return np.concatenate(columns, axis=1)


@dataclass(frozen=True)
class RegressionProfile:
    """A fitted profile: its terms, the covariates' standardisation and the coefficients."""

    terms: ProfileTerms
    means: tuple[float, ...]
    stds: tuple[float, ...]
    base_coef: np.ndarray
    covariate_coefs: tuple[np.ndarray, ...]
    # Per covariate and slot: its terms' mean contribution on the training part (what a missing
    # reading contributes).
    missing_fill: tuple[np.ndarray, ...]

    @property
    def covariates(self) -> tuple[str, ...]:
        return self.terms.covariates

    def path(
        self, ns: np.ndarray, covariates: Mapping[str, np.ndarray], calendar: CalendarSpec | None
    ) -> np.ndarray:
        """The profile at grid times `ns` (int64 ns, UTC), given the covariates at those times.

        The covariates' past-day means read the values given before each time: pass a day of
        covariate readings before the first time that matters.
        """
        ns = np.asarray(ns, dtype=np.int64)
        base, slot = _base_columns(ns, self.terms, calendar)
        out: np.ndarray = base @ self.base_coef
        for columns, coef, fill in self._covariate_parts(ns, covariates, slot):
            contribution = columns @ coef
            missing = ~np.isfinite(contribution)
            contribution[missing] = fill[slot[missing]]
            out += contribution
        return out

    def _covariate_parts(
        self, ns: np.ndarray, covariates: Mapping[str, np.ndarray], slot: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        slot_hot = _one_hot(slot, self.terms.slots)
        month_hot = None
        if self.terms.annual:
            month = pd.DatetimeIndex(_local_ns(ns, self.terms.timezone)).month.to_numpy() - 1
            month_hot = _one_hot(month, MONTHS)
        parts = []
        for i, name in enumerate(self.covariates):
            if name not in covariates:
                raise ValueError(
                    f"Received covariates {sorted(covariates)}, expected {list(self.covariates)}: "
                    "the model was trained with them."
                )
            values = np.asarray(covariates[name], dtype=np.float64)
            if values.shape != ns.shape:
                raise ValueError(
                    f"Received covariate {name!r} with {values.shape[0] if values.ndim else 0} values, "
                    f"expected {len(ns)} (one per grid step)."
                )
            standardised = (values - self.means[i]) / self.stds[i]
            columns = _covariate_columns(standardised, slot_hot, month_hot, self.terms.slots)
            fitted = i < len(self.covariate_coefs)  # not yet while fitting
            coef = self.covariate_coefs[i] if fitted else np.zeros(0)
            fill = self.missing_fill[i] if fitted else np.zeros(0)
            parts.append((columns, coef, fill))
        return parts

    def to_dict(self) -> dict[str, Any]:
        terms = self.terms
        return {
            "steps_per_day": terms.steps_per_day,
            "step_ns": terms.step_ns,
            "timezone": terms.timezone,
            "covariates": list(terms.covariates),
            "annual": terms.annual,
            "trend_origin_ns": terms.trend_origin_ns,
            "means": list(self.means),
            "stds": list(self.stds),
            "base_coef": self.base_coef.tolist(),
            "covariate_coefs": [c.tolist() for c in self.covariate_coefs],
            "missing_fill": [f.tolist() for f in self.missing_fill],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionProfile:
        return cls(
            terms=ProfileTerms(
                steps_per_day=float(data["steps_per_day"]),
                step_ns=int(data["step_ns"]),
                timezone=str(data["timezone"]),
                covariates=tuple(data["covariates"]),
                annual=bool(data["annual"]),
                trend_origin_ns=int(data["trend_origin_ns"]),
            ),
            means=tuple(float(v) for v in data["means"]),
            stds=tuple(float(v) for v in data["stds"]),
            base_coef=np.asarray(data["base_coef"], dtype=np.float64),
            covariate_coefs=tuple(np.asarray(c, dtype=np.float64) for c in data["covariate_coefs"]),
            missing_fill=tuple(np.asarray(f, dtype=np.float64) for f in data["missing_fill"]),
        )


def fit_profile(
    values: np.ndarray,
    ns: np.ndarray,
    covariates: Mapping[str, np.ndarray],
    calendar: CalendarSpec | None,
    *,
    steps_per_day: float,
    timezone: str = "UTC",
) -> RegressionProfile:
    """Least squares of the training part's readings on the profile's terms.

    Args:
        values: the training part's readings (NaN: missing, left out of the fit).
        ns: their grid times (int64 ns, UTC).
        covariates: name -> values on the same grid (NaN: missing; those rows are left out).
        calendar: the series' holidays and special days, or None (weekdays and weekends only).
    """
    values = np.asarray(values, dtype=np.float64)
    ns = np.asarray(ns, dtype=np.int64)
    names = tuple(covariates)
    means, stds = [], []
    for name in names:
        present = np.asarray(covariates[name], dtype=np.float64)
        present = present[np.isfinite(present)]
        if present.size == 0:
            raise ValueError(f"Covariate {name!r} has no readings in the training part.")
        means.append(float(np.mean(present)))
        stds.append(float(np.std(present)) or 1.0)
    span_ns = int(ns[-1] - ns[0]) if len(ns) else 0
    terms = ProfileTerms(
        steps_per_day=steps_per_day,
        step_ns=int(ns[1] - ns[0]) if len(ns) > 1 else NS_PER_DAY,
        timezone=timezone,
        covariates=names,
        annual=span_ns >= NS_PER_YEAR,
        trend_origin_ns=int(ns[-1]) if len(ns) else 0,
    )
    draft = RegressionProfile(terms, tuple(means), tuple(stds), np.zeros(0), (), ())
    base, slot = _base_columns(ns, terms, calendar)
    parts = draft._covariate_parts(ns, covariates, slot)
    x = np.concatenate([base] + [columns for columns, _, _ in parts], axis=1)
    rows = np.isfinite(values) & np.isfinite(x).all(axis=1)
    if rows.sum() < x.shape[1]:
        # Fewer complete rows than terms: keep the calendar terms only.
        x, parts = base, []
        rows = np.isfinite(values)
    xr = x[rows]
    gram = xr.T @ xr
    gram[np.diag_indices_from(gram)] += RIDGE * max(float(np.trace(gram)) / len(gram), 1e-12)
    coef = np.linalg.solve(gram, xr.T @ values[rows])
    base_coef = coef[: base.shape[1]]
    covariate_coefs, fills = [], []
    offset = base.shape[1]
    for columns, _, _ in parts:
        width = columns.shape[1]
        c = coef[offset : offset + width]
        offset += width
        contribution = columns @ c
        known = np.isfinite(contribution)
        sums = np.bincount(slot[known], weights=contribution[known], minlength=terms.slots)
        counts = np.bincount(slot[known], minlength=terms.slots)
        covariate_coefs.append(c)
        fills.append(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0))
    kept = names if parts else ()
    return RegressionProfile(
        ProfileTerms(terms.steps_per_day, terms.step_ns, timezone, kept, terms.annual, terms.trend_origin_ns),
        tuple(means) if parts else (),
        tuple(stds) if parts else (),
        base_coef,
        tuple(covariate_coefs),
        tuple(fills),
    )


class _PathView(SeasonalCycles):
    """A profile path read as a stream model reads a seasonal fit: `at(k)` is the profile `k`
    steps after the view's boundary. It has no cycles; it covers the span it was computed on."""

    _path: np.ndarray
    _first: int

    def __init__(self, path: np.ndarray, first: int) -> None:
        super().__init__(())
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_first", first)

    def at(self, offsets: np.ndarray) -> np.ndarray:
        index = self._first + np.asarray(offsets, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self._path)):
            raise ValueError(
                "Received a step outside the span the profile was computed on; pass covariates "
                "that span the history and the horizon."
            )
        return np.asarray(self._path[index], dtype=np.float64)

    def value_at(self, offset: int) -> float:
        return float(self.at(np.array([offset]))[0])


class ProfileSource:
    """The `SeasonalSource` of a profile model: the profile over a block of grid times.

    Stream steps and forecasts read it where MSTL models read their daily fits; every
    boundary reads the same path, since the profile is fixed at training.
    """

    def __init__(self, start_ns: int, step_ns: int, path: np.ndarray) -> None:
        self.start_ns = int(start_ns)
        self.step_ns = int(step_ns)
        self.path = np.asarray(path, dtype=np.float64)

    @classmethod
    def over(
        cls,
        profile: RegressionProfile,
        ns: np.ndarray,
        covariates: Mapping[str, np.ndarray],
        calendar: CalendarSpec | None,
    ) -> ProfileSource:
        """The profile over the consecutive grid times `ns` with the covariates there."""
        ns = np.asarray(ns, dtype=np.int64)
        return cls(int(ns[0]), profile.terms.step_ns, profile.path(ns, covariates, calendar))

    @property
    def end_ns(self) -> int:
        """The last grid time the path covers."""
        return self.start_ns + self.step_ns * (len(self.path) - 1)

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        return _PathView(self.path, (int(boundary_ns) - self.start_ns) // self.step_ns)


class PathFitter:
    """What a window model's `features.origin_batch` reads for a profile model: the profile
    around an origin, looked up by time in a `ProfileSource`."""

    def __init__(self, source: ProfileSource) -> None:
        self.source = source

    def around(
        self, values: np.ndarray, timestamps: pd.DatetimeIndex, end: int, before: int, ahead: int
    ) -> np.ndarray:
        """The profile over the `before` readings up to `timestamps[end]` and `ahead` after it."""
        index = (int(timestamps[end].value) - self.source.start_ns) // self.source.step_ns
        if index + ahead >= len(self.source.path) or index - before + 1 < 0:
            raise ValueError(
                "Received a forecast beyond the span the profile was computed on; pass covariates "
                "that span the history and the horizon."
            )
        return self.source.path[index - before + 1 : index + ahead + 1]
