"""Series frequencies (pandas offset aliases) and the grid of timestamps each one defines."""

import time
import warnings
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

NS_PER_S = 1_000_000_000
SECONDS_PER_DAY = 86_400
NS_PER_DAY = SECONDS_PER_DAY * NS_PER_S


@lru_cache(maxsize=256)
def parse_freq(freq: str) -> BaseOffset:
    """The offset for a pandas alias such as `15min`, `30min`, `h`, `D` or `W-SUN`.

    Raises:
        ValueError: the alias is unknown, or not a regular grid (sub-second, or zero).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated spellings ("H", "T") still mean their grid
        try:
            offset = to_offset(freq)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"'{freq}' is not a pandas offset alias such as 15min, h or D") from exc
    if offset is None:
        raise ValueError(f"'{freq}' is not a pandas offset alias such as 15min, h or D")
    if isinstance(offset, Tick) and (offset.nanos < NS_PER_S or offset.nanos % NS_PER_S):
        raise ValueError(f"'{freq}' is not a whole number of seconds; readings are stored per second")
    return offset


def checked_timezone(name: str) -> str:
    """`name` if it is an IANA time zone such as `Europe/London` (or `UTC`), else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{name}' is not an IANA time zone such as Europe/London or UTC") from None
    return name


def canonical_freq(freq: str) -> str:
    freqstr: str = parse_freq(freq).freqstr  # pandas is untyped here: its attributes are Any
    return freqstr


@lru_cache(maxsize=256)
def step_seconds(freq: str) -> int | None:
    """Seconds between readings for fixed frequencies (minutes, hours, days), else None."""
    offset = parse_freq(freq)
    return offset.nanos // NS_PER_S if isinstance(offset, Tick) else None


def steps_between(start: pd.Timestamp, end: pd.Timestamp, offset: BaseOffset) -> int:
    """Grid steps from `start` (counted) up to `end` (not counted); 0 when `end` is not after it.

    Weeks, months and quarters have no fixed length, so they are counted on the calendar.
    """
    if end <= start:
        return 0
    if isinstance(offset, Tick):
        return int((end - start).value // offset.nanos)
    return len(pd.date_range(start, end, freq=offset, inclusive="left"))


def fixed_step(offset: BaseOffset) -> pd.Timedelta:
    """The length of one step of a fixed frequency (minutes, hours, days).

    Raises:
        ValueError: a calendar frequency (weeks, months, quarters), whose steps differ in length.
    """
    if not isinstance(offset, Tick):
        raise ValueError(f"'{offset.freqstr}' steps differ in length; expected a fixed step such as h or D")
    return pd.Timedelta(offset)


def off_grid(ts_s: np.ndarray, freq: str) -> np.ndarray:
    """Mask of the timestamps (Unix seconds) that do not sit on the series' grid."""
    offset = parse_freq(freq)
    off: npt.NDArray[np.bool_]
    if isinstance(offset, Tick):
        off = ts_s % (offset.nanos // NS_PER_S) != 0
        return off
    stamps = pd.to_datetime(ts_s, unit="s")
    on = np.fromiter((offset.is_on_offset(t) for t in stamps), bool, len(stamps))
    off = ~on | (stamps != stamps.normalize())
    return off


def following(last_ts_s: int, freq: str, periods: int) -> np.ndarray:
    """The `periods` grid timestamps (Unix seconds) after `last_ts_s`."""
    step_s = step_seconds(freq)
    if step_s is not None:  # fixed steps: arithmetic, no calendar needed
        return last_ts_s + step_s * np.arange(1, periods + 1, dtype=np.int64)
    offset = parse_freq(freq)
    start = pd.Timestamp(last_ts_s, unit="s") + offset
    stamps = pd.date_range(start=start, periods=periods, freq=offset)
    ts_s: npt.NDArray[np.int64] = (stamps.asi8 // NS_PER_S).astype(np.int64)
    return ts_s


def grid_between(first_ts_s: int, last_ts_s: int, freq: str) -> np.ndarray:
    """Every grid timestamp (Unix seconds) from first to last inclusive."""
    step_s = step_seconds(freq)
    if step_s is not None:
        return np.arange(first_ts_s, last_ts_s + 1, step_s, dtype=np.int64)
    offset = parse_freq(freq)
    stamps = pd.date_range(start=pd.Timestamp(first_ts_s, unit="s"),
                           end=pd.Timestamp(last_ts_s, unit="s"), freq=offset)
    ts_s: npt.NDArray[np.int64] = (stamps.asi8 // NS_PER_S).astype(np.int64)
    return ts_s


def grid_steps(first_ts_s: int, last_ts_s: int, freq: str) -> int:
    """How many grid timestamps lie from first to last inclusive (missing readings count)."""
    step_s = step_seconds(freq)
    if step_s is not None:
        return (last_ts_s - first_ts_s) // step_s + 1
    return len(grid_between(first_ts_s, last_ts_s, freq))


def to_iso(ts_s: int) -> str:
    """Unix seconds as ISO 8601 UTC, e.g. 2024-01-01T00:30:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts_s)))


def on_grid(ts_s: np.ndarray, values: np.ndarray, freq: str) -> tuple[np.ndarray, np.ndarray]:
    """Spread stored readings over every grid step from the first to the last, NaN where none."""
    if len(ts_s) == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.float64)
    grid = grid_between(int(ts_s[0]), int(ts_s[-1]), freq)
    full = np.full(len(grid), np.nan)
    full[np.searchsorted(grid, ts_s)] = values
    return grid, full


def to_index(ts_s: np.ndarray) -> pd.DatetimeIndex:
    """Unix seconds as the naive-UTC DatetimeIndex the ML core works with."""
    return pd.DatetimeIndex(np.asarray(ts_s, dtype=np.int64) * NS_PER_S)


def iso_many(ts_s: np.ndarray) -> list[str]:
    """`to_iso` of many timestamps at once."""
    text = np.datetime_as_string(np.asarray(ts_s, dtype=np.int64).astype("datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]
