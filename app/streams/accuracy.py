"""Live accuracy of a stream: each one-step forecast judged when its reading arrives.

Running sums since the stream was (re)warmed: the model's absolute error, the seasonal naive's
(the reading one season earlier) over the same steps, and how often the 80% and 95% intervals
held the reading. MASE divides the model's MAE by the seasonal naive's in-sample MAE from
training, as the model's test metrics do; `relative_mae` compares it with the naive live.
"""

import math
from typing import Any

EMPTY: dict[str, Any] = {"n": 0, "abs_error": 0.0, "naive_n": 0, "naive_abs_error": 0.0,
                         "model_abs_error_vs_naive": 0.0, "inside_80": 0, "inside_95": 0}


def judge(accuracy: dict[str, Any] | None, forecast: dict[str, Any] | None, ts: str,
          value: float, naive: float | None) -> dict[str, Any]:
    """Add one reading's verdict; a forecast for another timestamp (a gap) is not judged."""
    sums = dict(accuracy or EMPTY)
    if forecast is None or forecast.get("ts") != ts or math.isnan(value):
        return sums
    error = abs(value - forecast["mean"])
    sums["n"] += 1
    sums["abs_error"] += error
    for level in (80, 95):
        lower, upper = forecast.get(f"lower_{level}"), forecast.get(f"upper_{level}")
        if lower is not None and upper is not None:
            sums[f"inside_{level}"] += int(lower <= value <= upper)
    if naive is not None and not math.isnan(naive):
        sums["naive_n"] += 1
        sums["naive_abs_error"] += abs(value - naive)
        sums["model_abs_error_vs_naive"] += error
    return sums


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
