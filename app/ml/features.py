"""Network inputs and targets from readings: shared verbatim by training and serving.

Every transformation around the network lives here, in numpy, so that the Keras stack stays a
plain RNN -> Dense stack that `engine.NumpyNetwork` can mirror, and so that the forecaster builds
exactly the inputs the network was trained on.

Values are divided by a per-series scale fitted on the training part, and both inputs and targets
are taken relative to the last observed level: a level drift then shifts nothing the network sees.
Window models read `window` readings minus the last one; stream (stateful) models read one
reading at a time as its change since the previous reading. Targets are the next `horizon`
readings minus the last one.

New accuracy options (seasonal lag inputs, a seasonal-naive residual target, per-window
normalisation) are meant to be one flag on `FeatureConfig` each, honoured by `window_batch`,
`stream_inputs`, `stream_targets` and `to_values`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from app.ml.spec import ResolvedSpec

NS_PER_DAY = 86_400 * 10**9
NS_PER_WEEK = 7 * NS_PER_DAY
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

    @classmethod
    def from_spec(cls, spec: ResolvedSpec) -> FeatureConfig:
        return cls(
            window=spec.window,
            horizon=spec.horizon,
            stream=spec.stateful,
            # Daily readings all share one time of day: that input would be a constant.
            time_of_day=spec.calendar and spec.steps_per_day > 1,
            day_of_week=spec.calendar,
        )

    @property
    def input_names(self) -> list[str]:
        names = ["change" if self.stream else "value_minus_last"]
        if self.time_of_day:
            names += ["time_of_day_sin", "time_of_day_cos"]
        if self.day_of_week:
            names += ["day_of_week_sin", "day_of_week_cos"]
        return names

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inputs": self.input_names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        return cls(**{k: v for k, v in data.items() if k != "inputs"})


def calendar(timestamps: pd.DatetimeIndex, config: FeatureConfig) -> np.ndarray:
    """Sine/cosine of time of day and day of week, shape (T, C); C may be 0."""
    # Wall-clock time: demand follows local hours, so a tz-aware index is read in its own zone.
    ns = timestamps.tz_localize(None).asi8 if timestamps.tz is not None else timestamps.asi8
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
    x[:, :, 0] = values
    if cal.shape[1]:
        x[:, :, 1:] = sliding_window_view(cal, config.window, axis=0)[first].transpose(0, 2, 1)
    if not targets:
        return x, None
    y = sliding_window_view(scaled, config.horizon)[ends + 1] - last
    return x, y.astype(np.float32)


def stream_inputs(scaled: np.ndarray, cal: np.ndarray, previous: float | None = None) -> np.ndarray:
    """Per-step inputs (T, F) of a stream model: change since the previous reading, calendar.

    The first step's change is 0 when there is no `previous` reading (the start of a segment).
    """
    change = np.diff(scaled, prepend=scaled[0] if previous is None else previous)
    return np.concatenate([change[:, None], cal], axis=1).astype(np.float32)


def stream_targets(scaled: np.ndarray, horizon: int) -> np.ndarray:
    """Per-step targets (T, horizon): the next readings minus this one; NaN past the end."""
    padded = np.concatenate([scaled, np.full(horizon, np.nan)])
    return (sliding_window_view(padded[1:], horizon)[: len(scaled)] - scaled[:, None]).astype(np.float32)


def to_values(relative: np.ndarray, last_value: np.ndarray | float, scale: float) -> np.ndarray:
    """Network outputs (..., horizon) back to readings, given the last observed reading."""
    return np.asarray(last_value, dtype=np.float64)[..., None] + scale * relative.astype(np.float64)
