"""A stream's state survives its binary form bit for bit, and the JSON form of older rows reads."""

import json

import numpy as np
import pytest

from app.ml.stream_state import (
    FORMAT_VERSION,
    StreamState,
    WindowState,
    decode,
    encode,
    from_json,
    to_json,
)

STREAM = StreamState(series="load",
                     network=(np.array([[0.1, -2.5e-300, 3.0]]), np.array([[1 / 3, 0.0, -0.0]])),
                     last_value=101.5, last_z=-3.25, last_ns=1_704_067_200 * 10**9, readings=7)
WINDOW = WindowState(series="löad", values=np.array([1.0, np.nan, 3.5]), last_ns=10**18, readings=3)


@pytest.mark.parametrize("state", [STREAM, WINDOW, StreamState(series="x", network=(np.zeros((1, 4)),)),
                                   WindowState(series="y")])
def test_binary_form_round_trips_exactly(state: StreamState | WindowState) -> None:
    data = encode(state)
    assert data[0] == FORMAT_VERSION
    back = decode(data)
    assert back == state and type(back) is type(state)
    assert decode(memoryview(data)) == state


def test_binary_form_is_a_fraction_of_the_json() -> None:
    assert len(encode(STREAM)) < len(json.dumps(to_json(STREAM))) / 2


@pytest.mark.parametrize("state", [STREAM, WINDOW])
def test_json_form_round_trips_and_reads_as_text_or_bytes(state: StreamState | WindowState) -> None:
    text = json.dumps(to_json(state))
    assert decode(text) == state
    assert decode(text.encode()) == state
    assert decode(json.loads(text)) == state


def test_rows_in_the_old_json_form_read() -> None:
    """Raw stream models' states from before `last_z` (with their forecast) read as z = y."""
    old = {"kind": "stream", "series": "load", "network": [[[0.5, 0.25]]], "last_value": 12.0,
           "last_timestamp": "2024-01-01T05:00:00", "readings": 3, "output": [1.0, 2.0]}
    state = decode(json.dumps(old))
    assert isinstance(state, StreamState)
    assert state.last_z == state.last_value == 12.0
    assert state.last_ns == 1_704_085_200 * 10**9
    np.testing.assert_array_equal(state.network[0], [[0.5, 0.25]])
    window = from_json({"kind": "window", "series": "s", "values": [1.0, None], "last_timestamp": None,
                        "readings": 0})
    assert isinstance(window, WindowState) and np.isnan(window.values[1])


@pytest.mark.parametrize("damaged", [b"", encode(STREAM)[:-3], encode(STREAM) + b"\x00",
                                     bytes([FORMAT_VERSION + 1]) + encode(STREAM)[1:],
                                     b'{"kind": "nothing"}', b'{"kind": "stream"}'])
def test_a_damaged_state_is_a_value_error(damaged: bytes) -> None:
    with pytest.raises(ValueError, match="stored state"):
        decode(damaged)
