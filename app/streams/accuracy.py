"""Live accuracy of a stream: each one-step forecast judged when its reading arrives.

Running sums since the stream was (re)warmed: the model's absolute error, the seasonal naive's
(the reading one baseline lag earlier: the stronger of one day or one week on the model's training
part, its spec's `seasonal_period`) over the same steps, and how often the 80% and 95% intervals
held the reading. MASE divides the model's MAE by the seasonal naive's in-sample MAE from
training, as the model's test metrics do; `relative_mae` compares it with the naive live.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

EMPTY: dict[str, Any] = {"n": 0, "abs_error": 0.0, "naive_n": 0, "naive_abs_error": 0.0,
                         "model_abs_error_vs_naive": 0.0, "inside_80": 0, "inside_95": 0}


def judge_many(accuracy: dict[str, Any] | None, actual: np.ndarray, predicted: np.ndarray,
               widths: dict[int, float], naive: np.ndarray) -> dict[str, Any]:
    """Add many readings' verdicts at once; NaN in `predicted` or `actual` means not judged.

    Args:
        actual: the readings.
        predicted: the one-step forecast made just before each reading.
        widths: half-width of each level's interval around a one-step forecast.
        naive: the seasonal-naive forecast of each reading (NaN if unknown).
    """
    sums = dict(accuracy or EMPTY)
    judged = ~np.isnan(actual) & ~np.isnan(predicted)
    error = np.abs(actual - predicted)[judged]
    sums["n"] += int(judged.sum())
    sums["abs_error"] += float(error.sum())
    for level in (80, 95):
        if level in widths:
            sums[f"inside_{level}"] += int((error <= widths[level]).sum())
    both = judged & ~np.isnan(naive)
    sums["naive_n"] += int(both.sum())
    sums["naive_abs_error"] += float(np.abs(actual - naive)[both].sum())
    sums["model_abs_error_vs_naive"] += float(np.abs(actual - predicted)[both].sum())
    return sums


def judge_each(accuracies: Sequence[dict[str, Any] | None], actual: np.ndarray,
               predicted: np.ndarray, widths: dict[int, np.ndarray],
               naive: np.ndarray) -> list[dict[str, Any]]:
    """`judge_many` for many streams with one reading each: the arithmetic once, in arrays.

    `widths` holds each stream's half-width per level.
    """
    judged = ~np.isnan(actual) & ~np.isnan(predicted)
    error = np.where(judged, np.abs(actual - predicted), 0.0)
    inside = {level: judged & (error <= width) for level, width in widths.items()}
    both = judged & ~np.isnan(naive)
    naive_error = np.where(both, np.abs(actual - naive), 0.0)
    rows = []
    for i, previous in enumerate(accuracies):
        sums = dict(previous or EMPTY)
        if judged[i]:
            sums["n"] += 1
            sums["abs_error"] += float(error[i])
            for level, hit in inside.items():
                sums[f"inside_{level}"] += int(hit[i])
        if both[i]:
            sums["naive_n"] += 1
            sums["naive_abs_error"] += float(naive_error[i])
            sums["model_abs_error_vs_naive"] += float(error[i])
        rows.append(sums)
    return rows


def summary(accuracy: dict[str, Any] | None, mase_scale: float | None) -> dict[str, Any]:
    """The figures a client sees: MAE, MASE, MAE relative to the naive, interval coverage."""
    sums = accuracy or EMPTY
    n = sums["n"]
    mae = sums["abs_error"] / n if n else None
    relative = (sums["model_abs_error_vs_naive"] / sums["naive_abs_error"]
                if sums["naive_abs_error"] else None)
    return {
        "judged": n,
        "mae": mae,
        "mase": mae / mase_scale if mae is not None and mase_scale else None,
        "naive_mae": sums["naive_abs_error"] / sums["naive_n"] if sums["naive_n"] else None,
        "relative_mae": relative,
        "coverage_80": sums["inside_80"] / n if n else None,
        "coverage_95": sums["inside_95"] / n if n else None,
    }
