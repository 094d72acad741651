"""Live accuracy of a stream: each one-step forecast judged when its reading arrives.

Running sums since the stream was (re)warmed: the model's absolute error, how often the 80% and
95% intervals held the reading, and the errors of two baselines at the same lead, each over the
steps where both it and the model had a forecast:
- persistence: the reading one step earlier, the naive forecast one step ahead;
- the seasonal naive: the reading one baseline lag earlier (the stronger of one day or one week
  on the model's training part, its spec's `seasonal_period`).
A one-step forecast judged only against the seasonal naive would look better than it is: that
baseline forecasts a whole season ahead. MASE divides the model's MAE by the seasonal naive's
in-sample MAE from training, as the model's test metrics do.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

# Baselines by the prefix of their sums; `naive` is the seasonal naive (its keys predate the other).
SEASONAL_NAIVE = "naive"
PERSISTENCE = "persistence"
BASELINES = (SEASONAL_NAIVE, PERSISTENCE)

EMPTY: dict[str, Any] = {"n": 0, "abs_error": 0.0, "inside_80": 0, "inside_95": 0} | {
    key: value for name in BASELINES for key, value in (
        (f"{name}_n", 0), (f"{name}_abs_error", 0.0), (f"model_abs_error_vs_{name}", 0.0))}


def judge(accuracies: Sequence[dict[str, Any] | None], counts: Sequence[int], actual: np.ndarray,
          predicted: np.ndarray, widths: dict[int, np.ndarray],
          baselines: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Add each stream's verdicts to its sums; NaN in `predicted` or `actual` means not judged.

    Args:
        accuracies: each stream's sums so far (None before its first verdict).
        counts: how many of the readings, in order, are each stream's.
        actual: the readings.
        predicted: the one-step forecast made just before each reading.
        widths: per level, the half-width of each reading's interval.
        baselines: per baseline in `BASELINES`, its forecast of each reading (NaN if unknown).
    """
    judged = ~np.isnan(actual) & ~np.isnan(predicted)
    error = np.abs(actual - predicted)
    inside = {level: judged & (error <= width) for level, width in widths.items()}
    against = {name: (judged & ~np.isnan(forecast), np.abs(actual - forecast))
               for name, forecast in baselines.items()}
    # One reading per stream (a fleet's post) is summed with Python scalars: numpy's per-call
    # overhead, paid per stream, would cost more than the arithmetic.
    scalars = (judged.tolist(), error.tolist(), {lv: hit.tolist() for lv, hit in inside.items()},
               {name: (both.tolist(), e.tolist()) for name, (both, e) in against.items()})
    rows = []
    start = 0
    for previous, count in zip(accuracies, counts, strict=True):
        sums = {**EMPTY, **(previous or {})}
        if count == 1:
            _add_one(sums, start, *scalars)
        else:
            _add_many(sums, slice(start, start + count), judged, error, inside, against)
        start += count
        rows.append(sums)
    return rows


def _add_one(sums: dict[str, Any], i: int, judged: list[bool], error: list[float],
             inside: dict[int, list[bool]],
             against: dict[str, tuple[list[bool], list[float]]]) -> None:
    if not judged[i]:
        return
    sums["n"] += 1
    sums["abs_error"] += error[i]
    for level, hit in inside.items():
        sums[f"inside_{level}"] += int(hit[i])
    for name, (both, baseline_error) in against.items():
        if both[i]:
            sums[f"{name}_n"] += 1
            sums[f"{name}_abs_error"] += baseline_error[i]
            sums[f"model_abs_error_vs_{name}"] += error[i]


def _add_many(sums: dict[str, Any], mine: slice, judged: np.ndarray, error: np.ndarray,
              inside: dict[int, np.ndarray],
              against: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    ok = judged[mine]
    sums["n"] += int(ok.sum())
    sums["abs_error"] += _total(error[mine], ok)
    for level, hit in inside.items():
        sums[f"inside_{level}"] += int(hit[mine].sum())
    for name, (both, baseline_error) in against.items():
        with_baseline = both[mine]
        sums[f"{name}_n"] += int(with_baseline.sum())
        sums[f"{name}_abs_error"] += _total(baseline_error[mine], with_baseline)
        sums[f"model_abs_error_vs_{name}"] += _total(error[mine], with_baseline)


def _total(values: np.ndarray, keep: np.ndarray) -> float:
    """The sum of the kept values; 0.0 for none (numpy's pairwise sum over the kept ones)."""
    return float(values[keep].sum()) if keep.any() else 0.0


def summary(accuracy: dict[str, Any] | None, mase_scale: float | None,
            seasonal_period: int | None = None) -> dict[str, Any]:
    """The figures a client sees: MAE, MASE, MAE beside each baseline's, interval coverage.

    `relative_mae` compares the model with the seasonal naive and `relative_mae_persistence`
    with persistence, each over the readings both forecast; `baselines` names them and says how
    many steps back each reads (the seasonal naive's lag is the model's, None without one).
    """
    sums = {**EMPTY, **(accuracy or {})}
    n = sums["n"]
    mae = sums["abs_error"] / n if n else None
    return {
        "judged": n,
        "mae": mae,
        "mase": mae / mase_scale if mae is not None and mase_scale else None,
        "naive_mae": _mean(sums, f"{SEASONAL_NAIVE}_abs_error", f"{SEASONAL_NAIVE}_n"),
        "relative_mae": _ratio(sums, SEASONAL_NAIVE),
        "persistence_mae": _mean(sums, f"{PERSISTENCE}_abs_error", f"{PERSISTENCE}_n"),
        "relative_mae_persistence": _ratio(sums, PERSISTENCE),
        "baselines": {
            SEASONAL_NAIVE: {"name": "seasonal naive", "lag_steps": seasonal_period},
            PERSISTENCE: {"name": "persistence", "lag_steps": 1},
        },
        "coverage_80": sums["inside_80"] / n if n else None,
        "coverage_95": sums["inside_95"] / n if n else None,
    }


def _mean(sums: dict[str, Any], total: str, count: str) -> float | None:
    return sums[total] / sums[count] if sums[count] else None


def _ratio(sums: dict[str, Any], baseline: str) -> float | None:
    denominator = sums[f"{baseline}_abs_error"]
    return sums[f"model_abs_error_vs_{baseline}"] / denominator if denominator else None
