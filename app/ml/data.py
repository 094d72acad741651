"""Series as training sees them: gaps, segments, the chronological split and scaling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.ml.calendar import CalendarSpec
from app.ml.evaluation import mase_scale
from app.ml.spec import freq_seconds
from app.timegrid import parse_freq

# Gaps up to this many missing readings are filled by linear interpolation; longer gaps cut the
# series into segments, because inventing an hour of electricity demand would teach the model
# straight lines.
MAX_INTERPOLATED_GAP_STEPS = 4
# A training part shorter than window + horizon + this many windows cannot fit anything useful.
MIN_TRAIN_WINDOWS = 16


class TrainingDataError(ValueError):
    """The data cannot train a model; the message is a sentence for the user."""


@dataclass(frozen=True)
class SeriesData:
    """One series of readings on a regular grid; NaN marks a missing reading.

    `covariates` are other series (temperature) already aligned to this grid by
    `covariates.align`, one value per reading, NaN where missing: training masks those, it never
    invents them. `calendar` names the series' holidays and special days (`calendar.py`).
    """

    values: np.ndarray
    timestamps: pd.DatetimeIndex
    freq: str
    name: str = "series"
    timezone: str = "UTC"
    covariates: Mapping[str, np.ndarray] = field(default_factory=dict)
    calendar: CalendarSpec | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 1:
            raise TrainingDataError(
                f"Series {self.name!r} must be one column of numbers, got an array of shape {values.shape}."
            )
        object.__setattr__(self, "values", values)
        covariates = {name: np.asarray(c, dtype=np.float64) for name, c in self.covariates.items()}
        for covariate_name, covariate in covariates.items():
            if covariate.shape != values.shape:
                raise TrainingDataError(
                    f"Covariate {covariate_name!r} of series {self.name!r} has shape {covariate.shape}, "
                    f"expected {values.shape}: one value per reading, aligned to the series' grid."
                )
        object.__setattr__(self, "covariates", covariates)
        if len(self.timestamps) != len(values):
            raise TrainingDataError(
                f"Series {self.name!r} has {len(values)} readings but {len(self.timestamps)} "
                "timestamps; expected one timestamp per reading."
            )
        if len(values) > 1:
            freq_seconds(self.freq)  # a frequency training knows, else ValueError
            # On the UTC grid readings are stored on, whatever zone the index is shown in.
            utc = self.timestamps.tz_convert(None) if self.timestamps.tz is not None else self.timestamps
            expected = pd.date_range(utc[0], periods=len(values), freq=parse_freq(self.freq))
            if not np.array_equal(utc.asi8, expected.asi8):
                raise TrainingDataError(
                    f"Series {self.name!r} is not on a regular {self.freq} grid; expected one "
                    f"reading every {self.freq} step with NaN for missing readings."
                )


@dataclass(frozen=True)
class Split:
    """Positions where the validation and test parts begin (the test part runs to the end)."""

    n: int
    val_start: int
    test_start: int
    # Readings at the end of the training part whose origins calibrate the intervals too
    # (`training.CALIBRATION_MIN_DAYS`): 0 when the validation part's second half is long enough.
    calibration_tail: int = 0

    @property
    def calibration_start(self) -> int:
        """Where the validation part's second half begins: early stopping and `auto` select on
        the first half, conformal intervals calibrate on this one, which no selection has seen."""
        return self.val_start + (self.test_start - self.val_start) // 2


def interpolate_short_gaps(values: np.ndarray, max_gap_steps: int = MAX_INTERPOLATED_GAP_STEPS) -> np.ndarray:
    """Linearly fill runs of at most `max_gap_steps` NaNs that have readings on both sides."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    if not missing.any() or missing.all():
        return values.copy()
    filled = pd.Series(values).interpolate(method="linear", limit_area="inside", limit=max_gap_steps)
    # pandas fills the first `limit` NaNs of a longer gap too; keep long gaps whole.
    run_id = np.cumsum(~missing)
    run_len = np.bincount(run_id, weights=missing)[run_id]
    out: npt.NDArray[np.float64] = filled.to_numpy()
    out[missing & (run_len > max_gap_steps)] = np.nan
    return out


def segments(values: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, stop) ranges of consecutive non-NaN readings."""
    present = ~np.isnan(values)
    edges = np.diff(np.concatenate(([0], present.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def chronological_split(n: int, min_part: int, validation_fraction: float, test_fraction: float) -> Split:
    """Last `test_fraction` for test, the part before for validation, each >= `min_part`."""
    n_test = max(round(n * test_fraction), min_part)
    n_val = max(round(n * validation_fraction), min_part)
    return Split(n=n, val_start=n - n_test - n_val, test_start=n - n_test)


def fit_scale(train_values: np.ndarray, name: str) -> float:
    """Spread of the training part (std), the divisor that makes level-relative values unitless."""
    present = train_values[~np.isnan(train_values)]
    if present.size == 0:
        raise TrainingDataError(f"Series {name!r} has no readings in its training part.")
    scale = float(np.std(present))
    if not scale > 1e-12 * max(1.0, float(np.max(np.abs(present)))):
        raise TrainingDataError(
            f"Series {name!r} is constant ({present[0]:g}) in its training part; a forecast "
            "model needs values that vary."
        )
    return scale


def min_readings(
    *, window: int, horizon: int, period: int, validation_fraction: float, test_fraction: float
) -> int:
    """The fewest readings (grid steps, missing ones included) `prepare_series` accepts."""
    min_part = max(period, horizon)
    min_train = window + horizon + MIN_TRAIN_WINDOWS
    kept = 1 - validation_fraction - test_fraction
    n = max(min_train + 2 * min_part, int(min_train / kept) - 2)
    while chronological_split(n, min_part, validation_fraction, test_fraction).val_start < min_train:
        n += 1
    return n


def too_short_message(
    name: str, n: int, *, window: int, horizon: int, period: int, validation_fraction: float,
    test_fraction: float
) -> str:
    """Why a series of `n` readings cannot fill the spec, with the length it needs."""
    needed = min_readings(window=window, horizon=horizon, period=period,
                          validation_fraction=validation_fraction, test_fraction=test_fraction)
    return (
        f"Series {name!r} spans {n} readings; this model needs at least {needed}: "
        f"{window + horizon + MIN_TRAIN_WINDOWS} to train on (a window of {window}, a horizon of "
        f"{horizon} and {MIN_TRAIN_WINDOWS} windows) plus validation and test parts of at least "
        f"{max(period, horizon)} readings each ({validation_fraction:g} and {test_fraction:g} of "
        "the series)."
    )


@dataclass(frozen=True)
class PreparedSeries:
    """A series ready for features: short gaps filled, split, and its training scale."""

    name: str
    values: np.ndarray
    timestamps: pd.DatetimeIndex
    split: Split
    segments: list[tuple[int, int]]
    scale: float
    mase_scale: float

    @property
    def scaled(self) -> np.ndarray:
        return self.values / self.scale


def prepare_series(
    series: SeriesData,
    *,
    window: int,
    horizon: int,
    period: int,
    validation_fraction: float,
    test_fraction: float,
    max_gap_steps: int = MAX_INTERPOLATED_GAP_STEPS,
) -> PreparedSeries:
    """Fill short gaps, split chronologically and fit the scale on the training part only.

    Raises:
        TrainingDataError: no readings, too few readings, or a constant training part.
    """
    n = len(series.values)
    if n == 0 or np.isnan(series.values).all():
        raise TrainingDataError(f"Series {series.name!r} has no readings.")
    min_part = max(period, horizon)
    split = chronological_split(n, min_part, validation_fraction, test_fraction)
    if split.val_start < window + horizon + MIN_TRAIN_WINDOWS:
        raise TrainingDataError(too_short_message(
            series.name, n, window=window, horizon=horizon, period=period,
            validation_fraction=validation_fraction, test_fraction=test_fraction))
    values = interpolate_short_gaps(series.values, max_gap_steps)
    train = values[: split.val_start]
    return PreparedSeries(
        name=series.name,
        values=values,
        timestamps=series.timestamps,
        split=split,
        segments=segments(values),
        scale=fit_scale(train, series.name),
        mase_scale=mase_scale(train, period),
    )
