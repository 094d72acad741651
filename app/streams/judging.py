"""What readings leave behind in a stream: their verdicts, and the forecast of the next step.

Every stream post ends here, whichever way its rows were read and written (`posting`): the
model has stepped over each stream's grid and made a one-step forecast after every step. Each
reading is judged against the forecast made just before it (the stored one for a stream's first
step), beside the baselines' forecasts of it, and the last forecast becomes the stream's next
point, with its intervals.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.ml.forecaster import DEFAULT_LEVELS, Forecast, Forecaster
from app.streams import accuracy
from app.timegrid import iso_many

Point = dict[str, Any]  # a forecast point as the API shows it: ts, mean, each level's bounds
Lag = int | np.ndarray  # seconds, one for all readings or one per reading


@dataclass(frozen=True)
class Stepped:
    """Streams after the model stepped over their readings, as flat arrays, stream after stream.

    Attributes:
        series: each stream's series name (B).
        accuracies: each stream's live-accuracy sums before the post (B).
        stored_next: each stream's stored next point before the post (B).
        grid_counts: how many grid steps (readings, and missing steps filled) each stream took (B).
        grid_ts: each grid step's time in Unix seconds (G).
        means: the one-step forecast made after each grid step, NaN where none (G).
        sent_at: the grid step of each reading sent, in order (R).
        sent_counts: how many of the readings are each stream's (B).
        values: the readings (R).
        baselines: per baseline of `accuracy.BASELINES`, its forecast of each reading (R).
        next_ts: the time of each stream's next step after its last (B).
    """

    series: Sequence[str]
    accuracies: Sequence[dict[str, Any] | None]
    stored_next: Sequence[Point | None]
    grid_counts: np.ndarray
    grid_ts: np.ndarray
    means: np.ndarray
    sent_at: np.ndarray
    sent_counts: np.ndarray
    values: np.ndarray
    baselines: dict[str, np.ndarray]
    next_ts: np.ndarray


def judged(forecaster: Forecaster, stepped: Stepped) -> tuple[list[dict[str, Any]], list[Point | None]]:
    """Each stream's live accuracy with its readings judged, and its next point."""
    starts = np.concatenate([[0], np.cumsum(stepped.grid_counts)[:-1]]).astype(np.int64)
    prior = np.concatenate([[np.nan], stepped.means[:-1]])
    first_stamps = iso_many(stepped.grid_ts[starts])
    prior[starts] = [np.nan if stored is None or stored["ts"] != stamp else stored["mean"]
                     for stored, stamp in zip(stepped.stored_next, first_stamps, strict=True)]
    by_series = {name: one_step_widths(forecaster, name) for name in set(stepped.series)}
    widths = [by_series[name] for name in stepped.series]
    owner = np.repeat(np.arange(len(widths)), stepped.sent_counts)
    per_reading = {level: np.array([w[level] for w in widths])[owner] for level in widths[0]} \
        if widths else {}
    sums = accuracy.judge(stepped.accuracies, stepped.sent_counts.tolist(), stepped.values,
                          prior[stepped.sent_at], per_reading, stepped.baselines)
    last = starts + stepped.grid_counts - 1
    stamps = iso_many(stepped.next_ts)
    means = stepped.means[last].tolist()
    return sums, [point(stamp, mean, w) for stamp, mean, w in zip(stamps, means, widths, strict=True)]


def one_step_widths(forecaster: Forecaster, series: str) -> dict[int, float]:
    """The half-width of each default level's interval one step ahead, in the series' units."""
    levels = [level for level in forecaster.quantiles if level in DEFAULT_LEVELS]
    return {level: float(width[0]) for level, width in
            forecaster.interval_widths(series, 1, levels).items()}


def point(stamp: str, mean: float, widths: dict[int, float]) -> Point | None:
    """A one-step forecast with its intervals, as stored to judge the next reading; None if the
    model could not forecast."""
    if not np.isfinite(mean):
        return None
    row: Point = {"ts": stamp, "mean": mean}
    for level, width in widths.items():
        row[f"lower_{level}"], row[f"upper_{level}"] = mean - width, mean + width
    return row


def points(forecast: Forecast) -> list[Point]:
    """A forecast as the API's points: ts, mean and each level's bounds."""
    timestamps = forecast.timestamps
    if timestamps.tz is None:  # the naive UTC the ML core works with; strftime costs ~10x more
        stamps = iso_many(timestamps.values.astype("datetime64[s]").astype(np.int64))
    else:
        stamps = timestamps.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    keys = ["ts", "mean"]
    columns = [stamps, forecast.mean.tolist()]
    for level in forecast.lower:
        keys += [f"lower_{level}", f"upper_{level}"]
        columns += [forecast.lower[level].tolist(), forecast.upper[level].tolist()]
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


def baseline_lags_s(forecaster: Forecaster, step_s: Lag | None) -> dict[str, Lag]:
    """How far back each baseline reads its forecast of a reading, in seconds; none off a fixed
    grid (monthly data), where a step has no fixed length."""
    if step_s is None:
        return {}
    return {accuracy.SEASONAL_NAIVE: forecaster.spec.seasonal_period * step_s,
            accuracy.PERSISTENCE: step_s}


def baseline_forecasts(ts_s: np.ndarray, lags_s: dict[str, Lag],
                       stored: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """Each baseline's forecast of the readings at `ts_s`: the stored reading its lag earlier
    (`stored` gives the reading at each time, NaN where there is none)."""
    return {name: stored(ts_s - lag) for name, lag in lags_s.items()}
