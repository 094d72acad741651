"""Plain-text tables for the terminal: aligned columns, numbers to a sensible precision."""

import math
from collections.abc import Sequence
from typing import Any

METRIC_NAMES = ("mae", "rmse", "smape", "mase")
SIGNIFICANT_DIGITS = 4
# Past this many decimals a tiny value is as good as zero on a terminal.
MAX_DECIMALS = 10


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return plain_number(value)
    return str(value)


def plain_number(value: float) -> str:
    """About four significant digits in positional notation: `21770`, `0.5241`, never `2.177e+04`.

    Whole digits are never cut (a reading of 21770.4 shows as `21770`, not `2.177e+04`); the
    decimals shown are those that carry the first four significant digits.
    """
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = min(max(SIGNIFICANT_DIGITS - 1 - magnitude, 0), MAX_DECIMALS)
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


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
