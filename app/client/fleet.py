"""Readings of many streams from one CSV file: read, split into requests, and the outcome.

POST /v1/streams/readings applies each stream's readings of one request whole or refuses them
whole. A file larger than one request is split so that each stream's readings travel together
where they fit; a stream too long for one request spans consecutive requests in time order, and
once one of them refuses it, its later readings are not sent (applied after a refused one they
would leave a gap the model fills with its own forecasts).
"""

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from app.client.api import ClientError, problem_text

COLUMNS = ("stream_id", "ts", "value")


@dataclass(frozen=True)
class FleetReading:
    """One row of the file; `line` is its line number, for messages."""

    stream_id: str
    ts: str
    value: float | None
    line: int
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "ts": self.ts, "value": self.value}


@dataclass
class StreamOutcome:
    """What the requests did to one stream, summed over the requests that carried it."""

    stream_id: str
    status: str = "applied"
    applied: int = 0
    duplicates: int = 0
    filled: int = 0
    refused: int = 0
    not_sent: int = 0
    last_ts: str | None = None
    next_forecast: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def reason(self) -> str:
        if self.error is None:
            return ""
        text = f"{self.error.get('status', '?')}: {problem_text(self.error)}"
        if self.not_sent:
            text += f" ({self.not_sent} later readings not sent)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "status": self.status, "applied": self.applied,
                "duplicates": self.duplicates, "filled": self.filled, "refused": self.refused,
                "not_sent": self.not_sent, "last_ts": self.last_ts,
                "next_forecast": self.next_forecast, "error": self.error}


@dataclass
class FleetOutcome:
    """Every stream's outcome in order of first appearance in the file, and the requests sent."""

    streams: dict[str, StreamOutcome] = field(default_factory=dict)
    requests: int = 0

    @property
    def refused_streams(self) -> list[StreamOutcome]:
        return [s for s in self.streams.values() if s.status == "refused"]

    def hold_back(self, planned: list[FleetReading]) -> list[FleetReading]:
        """The readings of `planned` to send: none of a stream already refused."""
        send = []
        for reading in planned:
            outcome = self.streams.get(reading.stream_id)
            if outcome is not None and outcome.status == "refused":
                outcome.not_sent += 1
            else:
                send.append(reading)
        return send

    def add(self, answer: dict[str, Any], sent: list[FleetReading]) -> None:
        """Fold in the answer to the request that carried `sent`."""
        self.requests += 1
        counts: dict[str, int] = {}
        for reading in sent:
            counts[reading.stream_id] = counts.get(reading.stream_id, 0) + 1
        for entry in answer.get("streams") or []:
            outcome = self.streams.setdefault(entry["stream_id"],
                                              StreamOutcome(entry["stream_id"]))
            outcome.applied += int(entry.get("applied") or 0)
            outcome.duplicates += int(entry.get("duplicates") or 0)
            outcome.filled += int(entry.get("filled") or 0)
            if entry.get("status") == "refused":
                outcome.status, outcome.error = "refused", entry.get("error") or {}
                outcome.refused += counts.get(outcome.stream_id, 0)
            else:
                outcome.last_ts = entry.get("last_ts") or outcome.last_ts
                outcome.next_forecast = entry.get("next_forecast")

    def to_json(self) -> dict[str, Any]:
        streams = list(self.streams.values())
        return {"applied": sum(s.applied for s in streams),
                "duplicates": sum(s.duplicates for s in streams),
                "refused": sum(s.refused + s.not_sent for s in streams),
                "requests": self.requests, "streams": [s.to_json() for s in streams]}


def read_fleet_csv(handle: TextIO, source: str) -> list[FleetReading]:
    """The rows of a `stream_id,ts,value` CSV (columns by header name, in any order; an empty
    value is a missing reading). Raises ClientError naming the line of the first bad row."""
    reader = csv.DictReader(handle)
    reader.fieldnames = _header(reader.fieldnames, source)
    readings = []
    for row in reader:
        reading = _reading(row, source, reader.line_num)
        if reading is not None:
            readings.append(reading)
    if not readings:
        raise ClientError(f"{source}: no readings (expected rows of stream_id,ts,value)")
    return readings


def _header(fieldnames: Sequence[str] | None, source: str) -> list[str]:
    names = [n.strip() for n in fieldnames or []]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ClientError(f"{source}: the header must name the columns {', '.join(COLUMNS)}; "
                          f"missing {', '.join(missing)} (got {', '.join(names) or 'no header'})")
    return names


def _reading(row: dict[str, str | None], source: str, line: int) -> FleetReading | None:
    """One row's reading; None for a blank row."""
    stream_id, ts = (row.get("stream_id") or "").strip(), (row.get("ts") or "").strip()
    text = (row.get("value") or "").strip()
    if not stream_id and not ts and not text:
        return None
    if not stream_id or not ts:
        raise ClientError(f"{source} line {line}: a reading needs a stream_id and a ts")
    return FleetReading(stream_id=stream_id, ts=ts, value=_value(text, source, line),
                        line=line, at=_timestamp(ts, source, line))


def _timestamp(ts: str, source: str, line: int) -> datetime:
    try:
        at = datetime.fromisoformat(ts)
    except ValueError:
        raise ClientError(f"{source} line {line}: ts {ts!r} is not an ISO 8601 timestamp "
                          "(2024-01-01T00:30:00Z)") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # the API reads naive as UTC


def _value(text: str, source: str, line: int) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ClientError(f"{source} line {line}: value {text!r} is not a number (leave it "
                          "empty for a missing reading)")
    return value


def plan_requests(readings: list[FleetReading], limit: int) -> list[list[FleetReading]]:
    """Requests of at most `limit` readings: each stream's readings in time order, whole in one
    request where they fit, else over consecutive requests."""
    if limit < 1:
        raise ValueError(f"Received limit={limit}, expected a positive number of readings")
    by_stream: dict[str, list[FleetReading]] = {}
    for reading in readings:
        by_stream.setdefault(reading.stream_id, []).append(reading)
    requests: list[list[FleetReading]] = []
    current: list[FleetReading] = []
    for stream_readings in by_stream.values():
        ordered = sorted(stream_readings, key=lambda r: r.at)
        if current and len(current) + len(ordered) > limit:
            requests.append(current)
            current = []
        while len(ordered) > limit:
            requests.append(ordered[:limit])
            ordered = ordered[limit:]
        current += ordered
    if current:
        requests.append(current)
    return requests


def rows_named(message: str, sent: list[FleetReading], source: str) -> str:
    """A whole-request problem's `readings.N...` fields as the file's lines."""
    def line_of(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"{source} line {sent[index].line}" if index < len(sent) else match.group(0)

    return re.sub(r"readings[.\[](\d+)\]?(\.\w+)?", lambda m: line_of(m) + (
        f" ({m.group(2)[1:]})" if m.group(2) else ""), message)
