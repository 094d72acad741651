"""Plain-text tables for the terminal: aligned columns, numbers to a sensible precision."""

import math
from collections.abc import Sequence
from typing import Any

METRIC_NAMES = ("mae", "rmse", "smape", "mase")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text_rows)]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]),
                      *(line(r) for r in text_rows)])


def metrics_table(metrics: dict[str, Any]) -> str:
    """A model's test metrics beside the seasonal-naive baseline's, one and all steps ahead.

    Args:
        metrics: a model's `metrics` as the API returns them (`one_step` and `full_horizon`,
            each with `model` and `seasonal_naive` figures, and `interval_coverage`).
    """
    horizon = metrics.get("horizon", "?")
    parts = [("one_step", "1 step"), ("full_horizon", f"{horizon} steps")]
    headers = ["metric"]
    for _, label in parts:
        headers += [f"model ({label})", f"naive ({label})"]
    rows = []
    for name in METRIC_NAMES:
        row: list[Any] = [name]
        for key, _ in parts:
            both = metrics.get(key) or {}
            row += [(both.get("model") or {}).get(name), (both.get("seasonal_naive") or {}).get(name)]
        rows.append(row)
    lines = [table(headers, rows)]
    coverage = metrics.get("interval_coverage") or {}
    if coverage:
        lines.append("interval coverage on the test part: " + ", ".join(
            f"{level}% -> {100 * float(share):.1f}%" for level, share in coverage.items()))
    if "test_origins" in metrics:
        lines.append(f"({metrics['test_origins']} test origins; lower is better; "
                     "MASE < 1 beats the seasonal naive)")
    return "\n".join(lines)
