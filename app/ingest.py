"""Parsing and checking uploaded readings (CSV or JSON) before anything is stored.

Pure functions over bytes and arrays: the API hands them a body, the storage layer gets back
validated arrays, and every problem is reported with its row so a client can fix its file.
"""

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.errors import Invalid, field_error
from app.timegrid import NS_PER_S, off_grid

MAX_REPORTED_ROWS = 20


@dataclass(frozen=True)
class ReadingsBatch:
    """Readings ready to store: Unix seconds, and float values with NaN for a missing reading."""

    ts_s: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_s)


@dataclass(frozen=True)
class CsvOptions:
    ts_col: str | None = None
    value_col: str | None = None
    sep: str = ","
    decimal: str = "."


def parse_csv(body: bytes, options: CsvOptions) -> tuple[pd.Series, pd.Series]:
    """The raw timestamp and value columns of a CSV body (header row required)."""
    if options.sep == options.decimal:
        raise Invalid("`sep` and `decimal` must differ",
                      errors=[field_error("decimal", options.decimal, "same character as `sep`")])
    try:
        frame = pd.read_csv(io.BytesIO(body), sep=options.sep, decimal=options.decimal,
                            keep_default_na=False, na_values=[""], dtype={0: str},
                            skipinitialspace=True, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"The body is not a readable CSV file: {exc}".strip()) from exc
    columns = list(frame.columns)
    ts_col = options.ts_col if options.ts_col is not None else (columns[0] if columns else None)
    value_col = options.value_col if options.value_col is not None else (
        columns[1] if len(columns) > 1 else None)
    for name, col in (("ts_col", ts_col), ("value_col", value_col)):
        if col is None or col not in frame.columns:
            raise Invalid(f"Column {col!r} ({name}) is not in the CSV header {columns}",
                          errors=[field_error(name, col, f"not one of the columns {columns}")])
    return frame[ts_col].astype(str).where(frame[ts_col].notna(), ""), frame[value_col]


def parse_json(body: bytes) -> tuple[pd.Series, pd.Series]:
    """The raw timestamp and value columns of `{"readings": [{"ts", "value"}, ...]}`."""

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        document = json.loads(body, parse_constant=reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"The body is not valid JSON: {exc}") from exc
    readings = document.get("readings") if isinstance(document, dict) else None
    if not isinstance(readings, list):
        raise Invalid("The body must be an object with a list `readings`",
                      errors=[field_error("readings", None, "missing or not a list")])
    return readings_columns(readings)


def readings_columns(readings: list[Any]) -> tuple[pd.Series, pd.Series]:
    """Timestamp and value columns of a list of {ts, value} objects, checking their shape."""
    problems = []
    ts: list[Any] = []
    values: list[Any] = []
    for row, item in enumerate(readings):
        if not isinstance(item, dict) or "ts" not in item or "value" not in item:
            problems.append(field_error(f"readings[{row}]", item, "expected {\"ts\", \"value\"}",
                                        row=row))
            ts.append("")
            values.append(None)
            continue
        ts.append(item["ts"] if isinstance(item["ts"], str) else "")
        if not isinstance(item["ts"], str):
            problems.append(field_error(f"readings[{row}].ts", item["ts"],
                                        "expected an ISO 8601 timestamp string", row=row))
        value = item["value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(field_error(f"readings[{row}].value", value,
                                        "expected a number or null", row=row))
            value = None
        values.append(value)
        if len(problems) >= MAX_REPORTED_ROWS:
            break
    if problems:
        raise Invalid(f"{len(problems)} reading(s) are malformed", errors=problems)
    return pd.Series(ts, dtype=object), pd.Series(values, dtype=float)


def to_batch(ts_raw: pd.Series, value_raw: pd.Series, freq: str, *, row_base: int = 0,
             ts_field: str = "ts", value_field: str = "value") -> ReadingsBatch:
    """Validate raw columns against the series' grid; raise Invalid naming the rows at fault.

    Timestamps without a zone are UTC. A missing value (empty or null) is kept as NaN;
    NaN/inf spelled out, non-numbers, unparsable or duplicated timestamps are errors.
    """
    n = len(ts_raw)
    ts = _parse_timestamps(ts_raw)
    values = pd.to_numeric(value_raw, errors="coerce").to_numpy(dtype=float)
    explicit_missing = value_raw.isna().to_numpy()
    bad_value = (np.isnan(values) & ~explicit_missing) | np.isinf(values)
    bad_ts = ts.isna().to_numpy()
    problems = _rows(bad_ts, ts_raw, ts_field, "not a timestamp", row_base)
    problems += _rows(bad_value, value_raw, value_field,
                      "not a finite number (leave it empty or null for a missing reading)", row_base)
    if problems:
        raise Invalid(f"{int(bad_ts.sum() + bad_value.sum())} row(s) have bad values",
                      errors=problems[:MAX_REPORTED_ROWS])
    if n == 0:
        raise Invalid("The upload holds no readings", errors=[field_error("readings", [], "empty")])
    ts_ns = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return checked_batch(ts_ns, values, freq, lambda mask, message: _rows(
        mask, ts_raw, ts_field, message, row_base))


Report = Callable[[np.ndarray, str], list[dict[str, Any]]]


def checked_batch(ts_ns: np.ndarray, values: np.ndarray, freq: str,
                  report: Report) -> ReadingsBatch:
    """Readings sorted by time, once their timestamps are whole seconds on the series' grid and
    none repeats; `report(mask, message)` names the rows at fault in the caller's terms."""
    fractional = ts_ns % NS_PER_S != 0
    if fractional.any():
        raise Invalid("Timestamps must be whole seconds", errors=report(fractional,
                                                                        "fractional second"))
    ts_s = ts_ns // NS_PER_S
    off = off_grid(ts_s, freq)
    if off.any():
        raise Invalid(f"{int(off.sum())} timestamp(s) are not on the series' {freq} grid",
                      errors=report(off, f"not on the {freq} grid"))
    duplicated = pd.Series(ts_s).duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise Invalid(f"{int(duplicated.sum())} rows repeat a timestamp within the upload",
                      errors=report(duplicated, "timestamp appears twice"))
    order = np.argsort(ts_s, kind="stable")
    return ReadingsBatch(ts_s=ts_s[order], values=values[order])


ZONE_SUFFIX = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"


def _parse_timestamps(raw: pd.Series) -> pd.Series:
    """Naive UTC datetimes (NaT where unparsable).

    Zoned and zone-less stamps are parsed apart: given both at once, pandas applies the first
    offset it meets to the zone-less ones instead of reading them as UTC.
    """
    text = raw.astype(str).str.strip()
    zoned = text.str.contains(ZONE_SUFFIX, regex=True).to_numpy()
    if zoned.all() or not zoned.any():
        return _parse_uniform(text)
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    parsed[zoned] = _parse_uniform(text[zoned])
    parsed[~zoned] = _parse_uniform(text[~zoned])
    return parsed


def _parse_uniform(text: pd.Series) -> pd.Series:
    try:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, utc=True, format="mixed", errors="coerce")
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _rows(mask: np.ndarray, raw: pd.Series, field: str, message: str,
          row_base: int) -> list[dict[str, Any]]:
    rows = np.flatnonzero(mask)[:MAX_REPORTED_ROWS]
    return [field_error(field, _jsonable(raw.iloc[i]), message, row=int(i) + row_base)
            for i in rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
