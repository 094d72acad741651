"""The lean decoding of stream post bodies and queries agrees with FastAPI's and pydantic's:
what it accepts it reads as they do, and what it declines goes to them (app/api/plain_posts.py).
"""

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from app.api.plain_posts import PostQuery, decode_readings, decode_stream_readings, plain_query
from app.api.routes.streams import _arrays
from app.api.schemas import ReadingsIn, StreamReadingsIn
from app.config import Settings
from app.main import create_app
from app.ml.forecaster import DEFAULT_LEVELS
from tests.api.helpers import assert_problem

PLAIN = [
    {"ts": "2024-01-13T12:00:00Z", "value": 1.5},
    {"ts": "2024-01-13T13:00:00", "value": None},
    {"ts": "2024-01-13T14:00:00.250+02:00", "value": -7},
    {"ts": "2024-01-13T15:00:00-05:30", "value": 1e15},
    {"ts": "1677-09-22T00:00:00Z", "value": 0},
]
# Each declined: some are wrong, some merely forms that only pydantic reads.
DECLINED = [
    {"ts": "2024-01-13 12:00:00", "value": 1.0},  # space: pydantic's
    {"ts": 1705147200, "value": 1.0},  # Unix time: pydantic's
    {"ts": "2024-13-13T12:00:00Z", "value": 1.0},  # month 13
    {"ts": "2024-01-13T12:00:00.1234567Z", "value": 1.0},  # beyond microseconds
    {"ts": "2024-01-13T12:00:00+24:00", "value": 1.0},
    {"ts": "2024-01-13t12:00:00z", "value": 1.0},
    {"ts": "1600-01-01T00:00:00Z", "value": 1.0},  # out of range
    {"ts": "2024-01-13T12:00:00Z", "value": True},  # strict: not a number
    {"ts": "2024-01-13T12:00:00Z", "value": "1"},
    {"ts": "2024-01-13T12:00:00Z", "value": 1e16},
    {"ts": "2024-01-13T12:00:00Z"},
    {"ts": "2024-01-13T12:00:00Z", "value": 1.0, "extra": 1},
    {"ts": ["2024-01-13T12:00:00Z"], "value": 1.0},
]


def pydantic_arrays(document: dict[str, Any], model: type[ReadingsIn | StreamReadingsIn],
                    ) -> tuple[np.ndarray, np.ndarray]:
    return _arrays(model.model_validate(document).readings)


def test_plain_bodies_read_as_pydantic_reads_them() -> None:
    document = {"readings": PLAIN}
    decoded = decode_readings(orjson.dumps(document))
    assert decoded is not None
    ts_ns, values = pydantic_arrays(document, ReadingsIn)
    np.testing.assert_array_equal(decoded.ts_ns, ts_ns)
    np.testing.assert_array_equal(decoded.values, values)
    assert decoded.ts_ns.dtype == np.int64 and decoded.values.dtype == np.float64


def test_plain_bulk_bodies_read_as_pydantic_reads_them() -> None:
    document = {"readings": [{"stream_id": f"meter-{i % 3}.a:b_c", **r}
                             for i, r in enumerate(PLAIN)]}
    decoded = decode_stream_readings(orjson.dumps(document))
    assert decoded is not None
    ts_ns, values = pydantic_arrays(document, StreamReadingsIn)
    np.testing.assert_array_equal(decoded.ts_ns, ts_ns)
    np.testing.assert_array_equal(decoded.values, values)
    assert decoded.names == [r["stream_id"] for r in document["readings"]]


@pytest.mark.parametrize("reading", DECLINED)
def test_other_bodies_are_left_to_pydantic(reading: dict[str, Any]) -> None:
    assert decode_readings(orjson.dumps({"readings": [PLAIN[0], reading]})) is None
    bulk = {"readings": [{"stream_id": "m", **reading}]}
    assert decode_stream_readings(orjson.dumps(bulk)) is None


@pytest.mark.parametrize("body", [
    b"", b"[]", b"{}", b'{"readings": []}', b'{"readings": {}}', b"not json", b'{"readings": [1]}',
    b'{"readings": [], "other": 1}', b'\xff{"readings": []}',
    b'{"readings": [{"ts": "2024-01-13T12:00:00Z", "value": NaN}]}',
])
def test_unusual_documents_are_left_to_fastapi(body: bytes) -> None:
    assert decode_readings(body) is None
    assert decode_stream_readings(body) is None


@pytest.mark.parametrize("stream_id", ["", "a b", "a\n", "é", "x" * 201, 7, None])
def test_stream_ids_off_the_pattern_are_left_to_pydantic(stream_id: Any) -> None:
    body = {"readings": [{"stream_id": stream_id, **PLAIN[0]}]}
    assert decode_stream_readings(orjson.dumps(body)) is None
    with pytest.raises(ValidationError):
        StreamReadingsIn.model_validate(body)


ALL = frozenset({"horizon", "level", "rewarm"})


@pytest.mark.parametrize("query,expected", [
    ("", PostQuery()),
    ("horizon=3", PostQuery(horizon=3)),
    ("level=50&level=99", PostQuery(levels=(50, 99))),
    ("rewarm=true&other=x", PostQuery(rewarm=True)),
    ("rewarm=false&horizon=12&level=80", PostQuery(horizon=12, levels=(80,))),
])
def test_plain_queries_read_as_fastapi_reads_them(query: str, expected: PostQuery) -> None:
    assert plain_query(QueryParams(query), ALL) == expected
    assert PostQuery().levels == DEFAULT_LEVELS


@pytest.mark.parametrize("query", ["horizon=0", "horizon=01", "horizon=x", "horizon=1&horizon=2",
                                   "level=", "level=-5", "rewarm=yes", "rewarm=True",
                                   "horizon=1234567890"])
def test_other_queries_are_left_to_fastapi(query: str) -> None:
    assert plain_query(QueryParams(query), ALL) is None


def test_a_route_reads_only_its_own_parameters() -> None:
    """The bulk post has no horizon or level: FastAPI ignores them there, and so does it."""
    assert plain_query(QueryParams("horizon=0&level=x&rewarm=true"),
                       frozenset({"rewarm"})) == PostQuery(rewarm=True)


@pytest.mark.parametrize("path", ["/v1/streams/m1/readings", "/v1/streams/readings"])
def test_a_streamed_body_over_the_limit_is_413(settings: Settings, auth: dict[str, str],
                                               path: str) -> None:
    """Without a Content-Length the limit is met while the body streams in: 413 as for a
    declared length (FastAPI's own body reading turned it into a 400 "error parsing the
    body", as the stream posts answered before they read their bodies themselves)."""
    settings.max_upload_bytes = 100
    reading = b'{"stream_id": "m1", "ts": "2024-01-13T12:00:00Z", "value": 1},'

    def chunks() -> Iterator[bytes]:
        yield b'{"readings": [' + reading * 5 + reading[:-1] + b"]}"

    with TestClient(create_app(settings)) as client:
        response = client.post(path, content=chunks(),
                               headers={**auth, "Content-Type": "application/json"})
    assert_problem(response, 413)
