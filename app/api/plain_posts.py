"""Stream posts read without FastAPI, for the requests every client sends: the body decoded
straight into arrays, the query parameters, the content type.

A body qualifies when orjson reads it and it is the documented shape with nothing unusual:
exactly the documented keys, times written `YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]`, values
numbers or null within the allowed magnitude, stream ids matching their pattern, times within
the range readings can be dated in. Anything else (bad input, or merely a form pydantic also
accepts, such as a Unix time or a space between date and time) decodes to None, and the route
hands the request to FastAPI's own validation: its errors, and what it accepts, are the contract
(`app.api.schemas`), so they are never reimplemented here. tests/api/test_plain_posts.py holds
each accepted body to what pydantic makes of it.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request

from app.api.params import STREAM_ID_PATTERN
from app.api.schemas import MAX_BULK_READINGS, MAX_READINGS
from app.ingest import MAX_ABS_READING, MAX_TIMESTAMP, MIN_TIMESTAMP
from app.ml.forecaster import DEFAULT_LEVELS
from app.timegrid import NS_PER_S

# What pydantic parses as a datetime, narrowed to the form that `datetime.fromisoformat` reads
# the same way (it reads more: those forms go to pydantic).
_PLAIN_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?")
# `fullmatch` of the pattern without its anchors: Python's `$` also matches before a final
# newline, where pydantic's does not.
_STREAM_ID = re.compile(STREAM_ID_PATTERN.removeprefix("^").removesuffix("$"))
_ONE_KEYS = frozenset({"ts", "value"})
_MANY_KEYS = frozenset({"stream_id", "ts", "value"})
_NUMBER_TYPES = frozenset({int, float, type(None)})
EPOCH = datetime(1970, 1, 1)
ONE_MICROSECOND = timedelta(microseconds=1)
MIN_NS, MAX_NS = (int(t.timestamp()) * NS_PER_S for t in (MIN_TIMESTAMP, MAX_TIMESTAMP))


@dataclass(frozen=True)
class Readings:
    """Readings as arrays: naive-UTC int64 nanoseconds and float64 values (NaN if missing)."""

    ts_ns: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class BulkReadings(Readings):
    """Readings of many streams: `names[i]` is the stream of reading i."""

    names: list[str]


def utc_ns(ts: datetime) -> int:
    """`ts` as naive-UTC nanoseconds (an aware time is converted), as a Python int."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return (ts - EPOCH) // ONE_MICROSECOND * 1000


def is_stream_id(name: str) -> bool:
    return _STREAM_ID.fullmatch(name) is not None


def decode_readings(body: bytes) -> Readings | None:
    """A one-stream post's `{"readings": [{"ts", "value"}, ...]}`, or None (see the module)."""
    readings = _readings(body, MAX_READINGS)
    if readings is None or any(type(r) is not dict or r.keys() != _ONE_KEYS for r in readings):
        return None
    return _arrays([r["ts"] for r in readings], [r["value"] for r in readings])


def decode_stream_readings(body: bytes) -> BulkReadings | None:
    """A bulk post's `{"readings": [{"stream_id", "ts", "value"}, ...]}`, or None."""
    readings = _readings(body, MAX_BULK_READINGS)
    if readings is None or any(type(r) is not dict or r.keys() != _MANY_KEYS for r in readings):
        return None
    names = [r["stream_id"] for r in readings]
    if set(map(type, names)) != {str} or not all(map(_STREAM_ID.fullmatch, set(names))):
        return None
    arrays = _arrays([r["ts"] for r in readings], [r["value"] for r in readings])
    return None if arrays is None else BulkReadings(arrays.ts_ns, arrays.values, names)


def _readings(body: bytes, max_readings: int) -> list[Any] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or document.keys() != {"readings"}:
        return None
    readings = document["readings"]
    if type(readings) is not list or not 1 <= len(readings) <= max_readings:
        return None
    return readings


def _arrays(stamps: list[Any], values: list[Any]) -> Readings | None:
    if not set(map(type, values)) <= _NUMBER_TYPES:  # `bool` is refused: the field is strict
        return None
    numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if np.abs(numbers[~np.isnan(numbers)]).max(initial=0.0) > MAX_ABS_READING:
        return None
    # A fleet's post repeats one time for every meter: each distinct one is parsed once.
    if set(map(type, stamps)) != {str}:
        return None
    ns_of: dict[str, int] = {}
    for stamp in set(stamps):
        if not _PLAIN_TS.fullmatch(stamp):
            return None
        try:
            ns = utc_ns(datetime.fromisoformat(stamp))
        except ValueError:  # a month 13, a leap second: pydantic says how it is wrong
            return None
        if not MIN_NS <= ns <= MAX_NS:
            return None
        ns_of[stamp] = ns
    ts_ns = np.fromiter((ns_of[s] for s in stamps), dtype=np.int64, count=len(stamps))
    return Readings(ts_ns=ts_ns, values=numbers)


@dataclass(frozen=True)
class PostQuery:
    """A post's query parameters, as FastAPI would read them."""

    horizon: int = 1
    levels: tuple[int, ...] = DEFAULT_LEVELS
    rewarm: bool = False


# Query values the lean handlers read themselves; any other form goes to FastAPI's validation.
_PLAIN_INT = re.compile(r"[1-9][0-9]{0,8}")
_PLAIN_BOOL = {"true": True, "false": False}


def plain_query(params: QueryParams, names: frozenset[str]) -> PostQuery | None:
    """The query parameters among `names` (the others are ignored, as FastAPI ignores unknown
    ones) if each is sent in its plainest form, else None."""
    if not params:
        return PostQuery()
    horizon, levels, rewarm = (params.getlist(name) if name in names else []
                               for name in ("horizon", "level", "rewarm"))
    if len(horizon) > 1 or len(rewarm) > 1 or not all(map(_PLAIN_INT.fullmatch, horizon + levels)):
        return None
    if rewarm and rewarm[0] not in _PLAIN_BOOL:
        return None
    return PostQuery(horizon=int(horizon[0]) if horizon else 1,
                     levels=tuple(map(int, levels)) if levels else DEFAULT_LEVELS,
                     rewarm=_PLAIN_BOOL[rewarm[0]] if rewarm else False)


def is_plain_json(request: Request) -> bool:
    """Whether the body is declared plain JSON (FastAPI also reads `+json` types and
    parameters such as `charset`: those take its path)."""
    return request.headers.get("content-type", "").lower() == "application/json"
