"""A stream's state between readings, typed, and its two encodings: compact binary and JSON.

A stream model's state is its network's h (and c) per layer, its last reading and that
reading's deseasonalised value, and when it was; a window model's is the readings it holds. The
database stores the binary form (`encode`): a version byte, a fixed header and the float64 arrays
as they lie in memory, a few hundred bytes that read back without parsing. The JSON form
(`to_json`) is what the API shows and what rows stored before the binary form hold; `decode`
reads both.

Float64, not float32: a state read back must step on exactly as the one kept in memory (the
durability tests compare a restarted server's state with an uninterrupted one bit for bit), and
float32 would round every stored h.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

FORMAT_VERSION = 1
_STREAM, _WINDOW = 0, 1
# version, kind, flags, readings, last timestamp (ns), last value, last z, series name's length
_HEADER = struct.Struct("<BBBqqddH")
_HAS_TIMESTAMP, _HAS_VALUE, _HAS_Z = 1, 2, 4
_LAYERS = struct.Struct("<H")
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, eq=False)
class StreamState:
    """A stateful network's state after its last reading.

    Attributes:
        series: the series (of the model's) whose scale the readings take.
        network: per recurrent layer h (and c for LSTM), each (1, units), float64.
        last_value: the last reading (or the forecast that filled it), None before any.
        last_z: the last reading less its seasonal component (the reading itself for raw
            models), None before any.
        last_ns: the last reading's time (int64 ns, UTC), None before any.
        readings: readings (and filled steps) taken since the state was made.
    """

    series: str
    network: tuple[np.ndarray, ...]
    last_value: float | None = None
    last_z: float | None = None
    last_ns: int | None = None
    readings: int = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamState) and _key(self) == _key(other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class WindowState:
    """A window (or bidirectional) model's state: the readings it holds, NaN where missing."""

    series: str
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last_ns: int | None = None
    readings: int = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowState) and _key(self) == _key(other)

    __hash__ = None  # type: ignore[assignment]


State = StreamState | WindowState


def _key(state: State) -> tuple[Any, ...]:
    """The state's fields as comparable values (arrays compare bit for bit, NaN equal to NaN)."""
    arrays = state.network if isinstance(state, StreamState) else (state.values,)
    rest = (state.last_value, state.last_z) if isinstance(state, StreamState) else ()
    return (state.series, state.last_ns, state.readings, *rest,
            tuple((a.shape, a.tobytes()) for a in arrays))


def advanced(state: State, **changes: Any) -> State:
    """`state` with `changes` (a frozen state is replaced, never edited)."""
    return replace(state, **changes)


# -- binary ---------------------------------------------------------------------------------

def encode(state: State) -> bytes:
    """The compact binary form: version, header, series name, then the arrays' float64 bytes."""
    name = state.series.encode()
    stream = isinstance(state, StreamState)
    last_value = state.last_value if isinstance(state, StreamState) else None
    last_z = state.last_z if isinstance(state, StreamState) else None
    flags = ((_HAS_TIMESTAMP if state.last_ns is not None else 0)
             | (_HAS_VALUE if last_value is not None else 0) | (_HAS_Z if last_z is not None else 0))
    parts = [_HEADER.pack(FORMAT_VERSION, _STREAM if stream else _WINDOW, flags, state.readings,
                          state.last_ns or 0, last_value or 0.0, last_z or 0.0, len(name)), name]
    arrays = state.network if isinstance(state, StreamState) else (state.values,)
    parts.append(_LAYERS.pack(len(arrays)))
    for array in arrays:
        data = np.ascontiguousarray(array, dtype="<f8")
        parts += [_LENGTH.pack(data.size), data.tobytes()]
    return b"".join(parts)


def decode(stored: bytes | memoryview | str | Mapping[str, Any]) -> State:
    """A state from its binary form, or from the JSON form (as text or parsed) of older rows.

    Raises ValueError for anything else, so a damaged row refuses its stream, never the post.
    """
    if isinstance(stored, Mapping):
        return from_json(stored)
    data = stored.encode() if isinstance(stored, str) else bytes(stored)
    if data[:1] in (b"{", b" "):
        return from_json(orjson.loads(data))
    try:
        return _unpack(data)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"Received a stored state that cannot be read: {exc}") from None


def _unpack(data: bytes) -> State:
    version, kind, flags, readings, last_ns, last_value, last_z, name_length = \
        _HEADER.unpack_from(data)
    if version != FORMAT_VERSION or kind not in (_STREAM, _WINDOW):
        raise ValueError(f"Received a stored state of format {version} and kind {kind}, "
                         f"expected format {FORMAT_VERSION}.")
    offset = _HEADER.size
    series = data[offset:offset + name_length].decode()
    offset += name_length
    (count,) = _LAYERS.unpack_from(data, offset)
    offset += _LAYERS.size
    arrays = []
    for _ in range(count):
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + 8 * size > len(data):
            raise ValueError(f"Received a stored state of {len(data)} bytes, cut short.")
        array = np.frombuffer(data, dtype="<f8", count=size, offset=offset).astype(np.float64)
        arrays.append(array)
        offset += 8 * size
    if offset != len(data):
        raise ValueError(f"Received a stored state of {len(data)} bytes, expected {offset}.")
    stamp = last_ns if flags & _HAS_TIMESTAMP else None
    if kind == _WINDOW:
        return WindowState(series=series, values=arrays[0], last_ns=stamp, readings=readings)
    return StreamState(series=series, network=tuple(a[None, :] for a in arrays),
                       last_value=last_value if flags & _HAS_VALUE else None,
                       last_z=last_z if flags & _HAS_Z else None, last_ns=stamp,
                       readings=readings)


# -- JSON -----------------------------------------------------------------------------------

def to_json(state: State) -> dict[str, Any]:
    """The JSON form the API shows: lists of floats that `json` round-trips exactly."""
    stamp = None if state.last_ns is None else pd.Timestamp(state.last_ns).isoformat()
    if isinstance(state, StreamState):
        return {"kind": "stream", "series": state.series,
                "network": [array.tolist() for array in state.network],
                "last_value": state.last_value, "last_z": state.last_z, "last_timestamp": stamp,
                "readings": state.readings}
    # A missing reading (closed hours) is null, not NaN, which JSON has not.
    return {"kind": "window", "series": state.series,
            "values": [None if v != v else v for v in state.values.tolist()],
            "last_timestamp": stamp, "readings": state.readings}


def from_json(data: Mapping[str, Any]) -> State:
    """A state from its JSON form. Raw stream models' states stored before `last_z` existed
    (with their forecast, `output`) read as z = y, which is what those models stepped on."""
    try:
        stamp = data["last_timestamp"]
        last_ns = None if stamp is None else int(pd.Timestamp(stamp).value)
        if data["kind"] == "window":
            return WindowState(series=str(data["series"]),
                               values=np.asarray(data["values"], dtype=np.float64).reshape(-1),
                               last_ns=last_ns, readings=int(data["readings"]))
        if data["kind"] != "stream":
            raise ValueError(f"unknown kind {data['kind']!r}")
        network = tuple(np.asarray(layer, dtype=np.float64) for layer in data["network"])
        last_value = _float(data["last_value"])
        last_z = _float(data["last_z"]) if "last_z" in data else last_value
        return StreamState(series=str(data["series"]), network=network, last_value=last_value,
                           last_z=last_z, last_ns=last_ns, readings=int(data["readings"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"Received a stored state that is not one: {exc}") from None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
