"""Parsing and checking uploaded readings (CSV or JSON) before anything is stored.

Pure functions over bytes and arrays: the API hands them a body, the storage layer gets back
validated arrays, and every problem is reported with its row so a client can fix its file.
"""

import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from app.errors import Invalid, field_error, unreadable_body
from app.timegrid import NS_PER_S, SECONDS_PER_DAY, off_grid, step_seconds

MAX_REPORTED_ROWS = 20
READING_KEYS = {"ts", "value"}
# Separators a file sent without `sep` is checked for, to suggest the right one.
OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}
# A date or a time of day: a one-line body holding one is readings whose line breaks were lost,
# one without is a header alone.
DATE_OR_TIME = re.compile(r"\d{4}-\d\d|\d\d?[/.-]\d\d?[/.-]\d\d|\d\d?:\d\d")
# Rows count readings from 1 (a CSV's first line after its header, a JSON body's first reading),
# and every message that names rows says so.
FIRST_ROW = 1
ROWS_COUNTED = "rows count readings from 1"
# What a CSV field costs to parse, at least, counted in bytes against the large-upload limit: a
# typical field ("2024-01-01 00:00", "1.5") is about this long, and a body of one-character
# fields costs the parser as much per field.
CSV_FIELD_COST_BYTES = 8
# Distinct timestamps tried when inferring the column's format (a first row may be odd).
FORMAT_SAMPLES = 5


@dataclass(frozen=True)
class ReadingsBatch:
    """Readings ready to store: Unix seconds, and float values with NaN for a missing reading."""

    ts_s: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_s)


@dataclass(frozen=True)
class TimestampFormat:
    """How timestamps are read: ISO 8601, else one format inferred for (or given to) the column.

    Attributes:
        ts_format: a strftime format every timestamp follows, e.g. `%d/%m/%Y %H:%M`.
        dayfirst: True reads `12/08/2000` as 12 August, False as December 8; None infers it
            and refuses a column that reads both ways.
    """

    ts_format: str | None = None
    dayfirst: bool | None = None

    def __post_init__(self) -> None:
        if self.ts_format is not None:
            checked_ts_format(self.ts_format)


def checked_ts_format(ts_format: str) -> str:
    """`ts_format` if pandas can parse with it, else Invalid naming it (a stray `%` or an
    unknown directive would otherwise fail the parse itself, after the upload began)."""
    try:
        pd.to_datetime(pd.Series([""], dtype=object), format=ts_format, errors="coerce", utc=True)
    except ValueError as exc:
        raise Invalid(f"`ts_format` {ts_format!r} is not a strftime format: {exc}",
                      errors=[field_error("ts_format", ts_format, str(exc))]) from None
    return ts_format


class Ambiguous(StrEnum):
    """Which of a local time's two moments to store where the clocks go back and it occurs twice."""

    EARLIEST = "earliest"  # the first, still on summer time
    LATEST = "latest"  # the second, on winter time
    INFER = "infer"  # from the order of the rows, as pandas' tz_localize does


@dataclass(frozen=True)
class LocalTimes:
    """How timestamps without an offset are read: as the local time of the series' zone.

    Attributes:
        timezone: the series' IANA time zone; UTC reads them as UTC.
        ambiguous: how to read a local time that occurs twice; None refuses such a time.
    """

    timezone: str = "UTC"
    ambiguous: Ambiguous | None = None

    @classmethod
    def of_series(cls, timezone: str, freq: str, ambiguous: Ambiguous | None) -> "LocalTimes":
        """How a series reads them: a grid of days or longer steps sits at midnight UTC, so its
        zone-less dates name days (`2024-03-04` is that day's reading), never local instants."""
        step_s = step_seconds(freq)
        sub_daily = step_s is not None and step_s < SECONDS_PER_DAY
        return cls(timezone=timezone if sub_daily else "UTC", ambiguous=ambiguous)


@dataclass(frozen=True)
class CsvOptions:
    ts_col: str | None = None
    value_col: str | None = None
    sep: str = ","
    decimal: str = "."
    max_columns: int = 64
    # Columns of covariate readings (app.covariate_uploads): never the value column by default.
    covariate_cols: tuple[str, ...] = ()


def parse_cost_bytes(body: bytes, media_type: str, sep: str = ",") -> int:
    """What parsing `body` costs, in bytes: its size, or for CSV its fields at
    CSV_FIELD_COST_BYTES each when that is more."""
    if media_type == "application/json":
        return len(body)
    fields = body.count(sep.encode()) + body.count(b"\n")
    return max(len(body), fields * CSV_FIELD_COST_BYTES)
    # Columns of covariate readings (app.covariate_uploads): never the value column by default.


def parse_csv(body: bytes, options: CsvOptions) -> tuple[pd.Series, pd.Series]:
    """The raw timestamp and value columns of a CSV body (header row required)."""
    ts, values, _ = parse_csv_columns(body, options)
    return ts, values


def parse_csv_columns(body: bytes, options: CsvOptions
                      ) -> tuple[pd.Series, pd.Series, dict[str, pd.Series]]:
    """The raw timestamp and value columns of a CSV body, and its `covariate_cols` by name."""
    if options.sep == options.decimal:
        raise Invalid("`sep` and `decimal` must differ",
                      errors=[field_error("decimal", options.decimal, "same character as `sep`")])
    _check_layout(body, options)
    _check_nul(body, options)
    try:
        frame = pd.read_csv(io.BytesIO(body), sep=options.sep, decimal=options.decimal,
                            keep_default_na=False, na_values=[""], dtype={0: str},
                            skipinitialspace=True, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"The body is not a readable CSV file: {exc}".strip(),
                      errors=[field_error("body", _opening(body), str(exc))]) from exc
    columns = [str(c) for c in frame.columns]
    ts_col = options.ts_col if options.ts_col is not None else columns[0]
    _check_column("ts_col", ts_col, columns)
    for col in options.covariate_cols:
        _check_column("covariate_cols", col, columns)
    plain = [c for c in columns if c not in options.covariate_cols]
    value_col = options.value_col if options.value_col is not None else _value_column(
        plain, ts_col)
    _check_column("value_col", value_col, columns)
    if set(options.covariate_cols) & {ts_col, value_col}:
        col = next(c for c in options.covariate_cols if c in (ts_col, value_col))
        raise Invalid(f"Column {col!r} cannot be both a covariate and the timestamp or value",
                      errors=[field_error("covariate_cols", col, "is `ts_col` or `value_col`")])
    return (frame[ts_col].astype(str).where(frame[ts_col].notna(), ""), frame[value_col],
            {c: frame[c] for c in options.covariate_cols})


def _check_column(name: str, col: str, columns: list[str]) -> None:
    if col not in columns:
        raise Invalid(f"Column {col!r} ({name}) is not in the CSV header {columns}",
                      errors=[field_error(name, col, f"not one of the columns {columns}")])


def _value_column(columns: list[str], ts_col: str) -> str:
    """The value column of a file sent without `value_col`: the one column beside the
    timestamps. A file of one column has none, and one of several must say which it means."""
    others = [c for c in columns if c != ts_col]
    if not others:
        raise Invalid(
            f"The CSV header {columns} names one column: an upload needs a timestamp column and "
            "a value column, with a header line such as `ts,value` (and `sep` if they are not "
            "separated by commas)",
            errors=[field_error("value_col", None, f"no column beside the timestamps in {columns}")])
    if len(others) > 1:
        raise Invalid(
            f"The CSV has {len(columns)} columns {columns}: send `value_col` naming the one to "
            f"store, one of {others}",
            errors=[field_error("value_col", None, f"several columns could be the values: {others}")])
    return others[0]


def _check_layout(body: bytes, options: CsvOptions) -> None:
    """Refuse, with the fix, the two files that parse as nonsense: a body whose line breaks were
    stripped (`curl -d @file` does that) and one separated by another character than `sep`."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        raise Invalid("The body is empty: a CSV upload needs a header line and one line per "
                      "reading", errors=[field_error("body", body.decode("utf-8", "replace"),
                                                     "empty")])
    if "\n" not in text and "\r" not in text and not DATE_OR_TIME.search(text):
        raise Invalid(
            f"The body holds only a header line ({text[:80]!r}) and no readings: add one line per "
            "reading below it",
            errors=[field_error("body", text[:80], "a header line and no readings")])
    if "\n" not in text and "\r" not in text:
        raise Invalid(
            "The body is a single line: a CSV upload needs a header line and one line per reading. "
            "If you sent a file with `curl -d @file`, which strips line breaks, send it with "
            "`curl --data-binary @file`",
            errors=[field_error("body", text[:80], "no line breaks")])
    lines = text.splitlines()
    header = lines[0]
    columns = header.count(options.sep) + 1
    if columns > options.max_columns:
        raise Invalid(
            f"The header has {columns} columns; at most {options.max_columns} are read "
            "(STATECAST_MAX_CSV_COLUMNS)",
            errors=[field_error("body", header[:80], f"{columns} columns in the header")])
    if options.sep in header:
        return
    for sep, name in OTHER_SEPARATORS.items():
        if sep in header:
            fix = f"`sep={sep}`" if sep != "\t" else "`sep=%09` (a tab)"
            first_row = lines[1] if len(lines) > 1 else ""
            if options.decimal == "." and re.search(r"\d,\d", first_row):
                fix += " and `decimal=,`"
            raise Invalid(
                f"The header {header!r} has no {options.sep!r} but looks {name}-separated: "
                f"send {fix}",
                errors=[field_error("sep", options.sep, f"the file looks {name}-separated; "
                                    f"send {fix}")])


@contextmanager
def rows_counted() -> Iterator[None]:
    """Say how rows are counted in any problem raised within that names rows."""
    try:
        yield
    except Invalid as exc:
        if not any("row" in error for error in exc.errors) or ROWS_COUNTED in exc.detail:
            raise
        raise Invalid(f"{exc.detail} ({ROWS_COUNTED})", errors=exc.errors, **exc.extra) from None
def _check_nul(body: bytes, options: CsvOptions) -> None:
    """Refuse a NUL byte, naming its row and column: the CSV parser ends a field at one, so
    `1\\x00` would otherwise be stored as 1."""
    at = body.find(b"\x00")
    if at < 0:
        return
    lines = body.splitlines()
    row = body.count(b"\n", 0, at)  # the header is line 0: data rows count from 1
    line_start = body.rfind(b"\n", 0, at) + 1
    column = body.count(options.sep.encode(), line_start, at)
    header = lines[0].decode("utf-8", "replace").split(options.sep) if lines else []
    field = header[column].strip() if column < len(header) else f"column {column + 1}"
    line = body[line_start:].split(b"\n", 1)[0].decode("utf-8", "backslashreplace")
    raise Invalid(f"Row {row} holds a NUL byte in {field!r}",
                  errors=[field_error(field, line, "NUL byte in the value", row=row)])


def parse_json(body: bytes) -> tuple[pd.Series, pd.Series]:
    """The raw timestamp and value columns of `{"readings": [{"ts", "value"}, ...]}`."""

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        # Integers become floats as they are read: a 400-digit one is then inf (refused with
        # the row), not an OverflowError later.
        document = json.loads(body, parse_constant=reject_constant, parse_int=float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise unreadable_body(exc, body) from None
    readings = document.get("readings") if isinstance(document, dict) else None
    problems = [] if isinstance(readings, list) else [
        field_error("readings", None, "missing or not a list")]
    if isinstance(document, dict):
        problems += [field_error(key, document[key], "unknown field")
                     for key in document.keys() - {"readings"}]
    if problems:
        raise Invalid("The body must be an object with a list `readings` and nothing else",
                      errors=problems)
    assert isinstance(readings, list)
    return readings_columns(readings)


def readings_columns(readings: list[Any]) -> tuple[pd.Series, pd.Series]:
    """Timestamp and value columns of a list of {ts, value} objects, checking their shape."""
    problems = []
    ts: list[Any] = []
    values: list[Any] = []
    # `readings[i]` indexes the array from 0; `row` counts readings from FIRST_ROW, as in a CSV.
    for row, item in enumerate(readings):
        if not isinstance(item, dict) or "ts" not in item or "value" not in item:
            problems.append(field_error(f"readings[{row}]", item, "expected {\"ts\", \"value\"}",
                                        row=row + FIRST_ROW))
            ts.append("")
            values.append(None)
            continue
        problems += [field_error(f"readings[{row}].{key}", item[key], "unknown field; a reading "
                                 "has only `ts` and `value`", row=row + FIRST_ROW)
                     for key in item.keys() - READING_KEYS]
        ts.append(item["ts"] if isinstance(item["ts"], str) else "")
        if not isinstance(item["ts"], str):
            problems.append(field_error(f"readings[{row}].ts", item["ts"],
                                        "expected an ISO 8601 timestamp string", row=row + FIRST_ROW))
        value = item["value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(field_error(f"readings[{row}].value", value,
                                        "expected a number or null", row=row + FIRST_ROW))
            value = None
        values.append(value)
        if len(problems) >= MAX_REPORTED_ROWS:
            break
    if problems:
        raise Invalid(f"{len(problems)} reading(s) are malformed", errors=problems)
    return pd.Series(ts, dtype=object), pd.Series(values, dtype=float)


def to_batch(ts_raw: pd.Series, value_raw: pd.Series, freq: str, *, row_base: int = FIRST_ROW,
             ts_field: str = "ts", value_field: str = "value",
             ts_format: TimestampFormat = TimestampFormat(),
             local: LocalTimes = LocalTimes()) -> ReadingsBatch:
    """Validate raw columns against the series' grid; raise Invalid naming the rows at fault.

    Timestamps without an offset are local times of `local.timezone`; one that does not exist
    there (the clocks go forward) is an error, and so is one that occurs twice (the clocks go
    back) unless `local.ambiguous` says which to take. A missing value (empty or null) is kept as NaN;
    NaN/inf spelled out, non-numbers, unparsable or duplicated timestamps are errors, and so is
    a column whose timestamps are written in more than one format or read two ways.
    """
    n = len(ts_raw)
    ts = _parse_timestamps(ts_raw, ts_format, local, lambda mask, message: _rows(
        mask, ts_raw, ts_field, message, row_base))
    values = pd.to_numeric(value_raw, errors="coerce").to_numpy(dtype=float)
    explicit_missing = value_raw.isna().to_numpy()
    bad_value = (np.isnan(values) & ~explicit_missing) | np.isinf(values)
    bad_ts = ts.isna().to_numpy()
    problems = _rows(bad_ts, ts_raw, ts_field, "not a timestamp", row_base)
    problems += _rows(bad_value, value_raw, value_field,
                      "not a finite number (leave it empty or null for a missing reading)", row_base)
    with np.errstate(invalid="ignore"):
        huge = np.abs(values) > MAX_ABS_READING
    problems += _rows(huge & ~bad_value, value_raw, value_field,
                      f"magnitude above {MAX_ABS_READING:g}", row_base)
    if problems:
        raise Invalid(f"{int(bad_ts.sum() + (bad_value | huge).sum())} row(s) have bad values",
                      errors=problems[:MAX_REPORTED_ROWS])
    if n == 0:
        raise Invalid("The upload holds no readings", errors=[field_error("readings", [], "empty")])
    ts_ns = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return checked_batch(ts_ns, values, freq, lambda mask, message: _rows(
        mask, ts_raw, ts_field, message, row_base))


Report = Callable[[np.ndarray, str], list[dict[str, Any]]]
# Readings beyond this magnitude are refused: no meter reads 1e15 of anything, and squares and
# sums of larger values (scaling, training losses, live accuracy) overflow to inf, which no
# JSON column stores.
MAX_ABS_READING = 1e15
# Timestamps are held as nanoseconds in numpy and pandas: these are the bounds of that range.
MIN_TIMESTAMP = pd.Timestamp.min.ceil("s").tz_localize("UTC").to_pydatetime()
MAX_TIMESTAMP = pd.Timestamp.max.floor("s").tz_localize("UTC").to_pydatetime()


def within_timestamp_range(value: datetime) -> datetime:
    """`value` if readings can be dated at it (years 1677 to 2262), else ValueError."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not MIN_TIMESTAMP <= aware <= MAX_TIMESTAMP:
        raise ValueError(f"must be between {MIN_TIMESTAMP:%Y-%m-%d} and {MAX_TIMESTAMP:%Y-%m-%d}")
    return value


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
    order = np.argsort(ts_s, kind="stable")
    ordered = ts_s[order]
    repeats = ordered[1:] == ordered[:-1]
    if repeats.any():  # mark every row of a repeated timestamp, in the caller's order
        duplicated = np.zeros(len(ts_s), dtype=bool)
        duplicated[order[1:][repeats]] = duplicated[order[:-1][repeats]] = True
        raise Invalid(f"{int(duplicated.sum())} rows repeat a timestamp within the upload",
                      errors=report(duplicated, "timestamp appears twice"))
    return ReadingsBatch(ts_s=ordered, values=values[order])


ZONE_SUFFIX = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"


def _parse_timestamps(raw: pd.Series, ts_format: TimestampFormat, local: LocalTimes,
                      report: Report) -> pd.Series:
    """Naive UTC datetimes (NaT where unparsable).

    Zoned and zone-less stamps are parsed apart: given both at once, pandas applies the first
    offset it meets to the zone-less ones instead of reading them as local times.
    """
    text = raw.astype(str).str.strip()
    zoned = text.str.contains(ZONE_SUFFIX, regex=True).to_numpy()
    if zoned.all():
        return _parse_uniform(text, ts_format, report)
    if not zoned.any():
        return _from_local(_parse_uniform(text, ts_format, report), local, report)
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")

    def report_within(part: np.ndarray) -> Report:
        def within(mask: np.ndarray, message: str) -> list[dict[str, Any]]:
            full = np.zeros(len(text), dtype=bool)
            full[np.flatnonzero(part)[mask]] = True
            return report(full, message)
        return within

    parsed[zoned] = _parse_uniform(text[zoned], ts_format, report_within(zoned))
    parsed[~zoned] = _from_local(_parse_uniform(text[~zoned], ts_format, report_within(~zoned)),
                                 local, report_within(~zoned))
    return parsed


def _from_local(wall: pd.Series, local: LocalTimes, report: Report) -> pd.Series:
    """Naive local times (`wall`, as parsed) as naive UTC, refusing the local times the zone
    skips and, unless `local.ambiguous` says which, those it repeats."""
    if local.timezone == "UTC":
        return wall
    zone, n = local.timezone, len(wall)
    present = wall.notna().to_numpy()
    earliest = wall.dt.tz_localize(zone, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT")
    skipped = present & earliest.isna().to_numpy()
    if skipped.any():
        raise Invalid(
            f"{int(skipped.sum())} local time(s) do not exist in {zone}: the clocks go forward "
            "over them. Send times in the zone's local clock, or with an offset such as +01:00",
            errors=report(skipped, f"does not exist in {zone} (the clocks go forward)"))
    if local.ambiguous is Ambiguous.INFER:
        try:
            localized = wall.dt.tz_localize(zone, ambiguous="infer")
        except Exception as exc:  # pandas 2 raises pytz's AmbiguousTimeError, no ValueError
            raise Invalid(
                f"`ambiguous=infer` cannot tell the repeated local times of {zone} apart: {exc}. "
                "It needs every reading of the repeated hour, in order; else send "
                "`ambiguous=earliest` or `ambiguous=latest`",
                errors=[field_error("ambiguous", local.ambiguous.value, str(exc))]) from None
    elif local.ambiguous is Ambiguous.LATEST:
        localized = wall.dt.tz_localize(zone, ambiguous=np.zeros(n, dtype=bool))
    else:
        localized = earliest
        if local.ambiguous is None:
            latest = wall.dt.tz_localize(zone, ambiguous=np.zeros(n, dtype=bool))
            twice = present & (earliest != latest).to_numpy()
            if twice.any():
                raise Invalid(
                    f"{int(twice.sum())} local time(s) occur twice in {zone}, where the clocks go "
                    "back: send `ambiguous=earliest` (summer time), `ambiguous=latest` (winter "
                    "time) or `ambiguous=infer` (from the order of the rows), or times with an "
                    "offset", errors=report(twice, f"occurs twice in {zone}; set `ambiguous`"))
    return _naive(localized.dt.tz_convert("UTC"))


def _parse_uniform(text: pd.Series, ts_format: TimestampFormat, report: Report) -> pd.Series:
    """One format for the whole column: `ts_format`, ISO 8601, or one inferred from its values.

    Never row by row: pandas' `format="mixed"` reads `12/08/2000` as 8 December and
    `13/08/2000` as 13 August in the same column.
    """
    if ts_format.ts_format is not None:
        return _naive(pd.to_datetime(text, utc=True, format=ts_format.ts_format, errors="coerce"))
    if ts_format.dayfirst is None:
        try:
            return _naive(pd.to_datetime(text, utc=True, format="ISO8601"))
        except (ValueError, TypeError):
            pass
    formats = _candidate_formats(text, ts_format.dayfirst)
    if not formats:
        return _naive(pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]"))
    present = (text != "").to_numpy()
    parsed = {f: pd.to_datetime(text, utc=True, format=f, errors="coerce") for f in formats}
    complete = [f for f in formats if parsed[f].notna().to_numpy()[present].all()]
    if len(complete) > 1 and not parsed[complete[0]].equals(parsed[complete[1]]):
        example = text[present].iloc[0]
        readings = " or ".join(f"{f} ({parsed[f][present].iloc[0]:%Y-%m-%d})" for f in complete)
        raise Invalid(
            f"The timestamps read two ways: {example!r} may be {readings}. Send `dayfirst=true` "
            "(day before month), `dayfirst=false` (month before day) or the exact `ts_format`",
            errors=[field_error("dayfirst", None, "ambiguous day and month order; set "
                                "`dayfirst` or `ts_format`")])
    best = complete[0] if complete else max(formats, key=lambda f: int(parsed[f].notna().sum()))
    chosen = parsed[best]
    failed = (chosen.isna().to_numpy() & present)
    if failed.any():
        readable = pd.to_datetime(text[failed], utc=True, format="mixed", errors="coerce")
        mixed = np.zeros(len(text), dtype=bool)
        mixed[np.flatnonzero(failed)[readable.notna().to_numpy()]] = True
        if mixed.any():
            raise Invalid(
                f"{int(mixed.sum())} timestamp(s) are written in another format than the rest of "
                f"the column ({best}); write them all one way, or send `ts_format`",
                errors=report(mixed, f"not in the column's format {best}")[:MAX_REPORTED_ROWS])
    return _naive(chosen)


def _candidate_formats(text: pd.Series, dayfirst: bool | None) -> list[str]:
    """Formats guessed from the first few distinct values: month-first and day-first readings
    of `12/08/2000` both, unless `dayfirst` says which. Year-first dates are not ambiguous."""
    for sample in text[text != ""].drop_duplicates().head(FORMAT_SAMPLES):
        month_first = guess_datetime_format(sample, dayfirst=False)
        day_first = guess_datetime_format(sample, dayfirst=True)
        if month_first is None and day_first is None:
            continue
        if month_first is not None and month_first.startswith("%Y"):
            return [month_first]
        if dayfirst is not None:
            chosen = day_first if dayfirst else month_first
            return [chosen] if chosen is not None else []
        return list(dict.fromkeys(f for f in (month_first, day_first) if f is not None))
    return []


def _naive(parsed: pd.Series) -> pd.Series:
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _rows(mask: np.ndarray, raw: pd.Series, field: str, message: str,
          row_base: int) -> list[dict[str, Any]]:
    rows = np.flatnonzero(mask)[:MAX_REPORTED_ROWS]
    return [field_error(field, _jsonable(raw.iloc[i]), message, row=int(i) + row_base)
            for i in rows]


def _opening(body: bytes) -> str:
    """The start of a body, as text, to show which body a problem is about."""
    return body[:80].decode("utf-8", errors="replace")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
