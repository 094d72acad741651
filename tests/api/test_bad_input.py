"""Input that once reached the database or the parser and came back as 500: each a 4xx now.

Each case asserts the exact 4xx, so a 500 (a bug, logged with its request id) fails it.
"""

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import assert_problem, create_series, readings

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("resource", ["series", "models", "jobs"])
def test_ids_beyond_the_id_columns_are_422(client: TestClient, auth: dict[str, str],
                                           resource: str) -> None:
    for too_large in (2**31, 2**63 - 1):
        assert_problem(client.get(f"/v1/{resource}/{too_large}", headers=auth), 422)
    assert client.get(f"/v1/{resource}/{2**31 - 1}", headers=auth).status_code == 404


@pytest.mark.parametrize("field", ["name", "unit", "description"])
def test_nul_bytes_in_text_are_422(client: TestClient, auth: dict[str, str], field: str) -> None:
    body = {"name": "n", "freq": "h", field: "a\x00b"}
    problem = assert_problem(client.post("/v1/series", json=body, headers=auth), 422, field)
    assert "NUL" in problem["errors"][0]["message"]


def test_a_nul_stream_id_is_422(client: TestClient, auth: dict[str, str]) -> None:
    assert_problem(client.get("/v1/streams/%00", headers=auth), 422, "path.stream_id")


def test_a_lone_surrogate_is_422_naming_the_field(client: TestClient,
                                                  auth: dict[str, str]) -> None:
    response = client.post("/v1/series", content=b'{"name": "a\\ud800b", "freq": "h"}',
                           headers={**auth, **JSON})
    problem = assert_problem(response, 422, "name")
    assert problem["errors"][0]["value"] == "a\\ud800b"


def test_a_huge_frequency_is_422(client: TestClient, auth: dict[str, str]) -> None:
    assert_problem(client.post("/v1/series", json={"name": "f", "freq": "99999999999999999999min"},
                               headers=auth), 422, "freq")


def test_a_400_digit_integer_reading_is_422(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    body = b'{"readings": [{"ts": "2024-01-01T00:00:00Z", "value": ' + b"9" * 400 + b"}]}"
    response = client.post(f"/v1/series/{sid}/readings", content=body, headers={**auth, **JSON})
    assert_problem(response, 422, "value")
    # Ordinary integers still load, as numbers.
    ok = b'{"readings": [{"ts": "2024-01-01T00:00:00Z", "value": 12}]}'
    assert client.post(f"/v1/series/{sid}/readings", content=ok,
                       headers={**auth, **JSON}).status_code == 200
    assert readings(client, auth, sid)[0]["value"] == 12.0


def test_json_nested_too_deep_is_a_client_error(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in (f"/v1/series/{sid}/readings", "/v1/series"):
        response = client.post(path, content=deep, headers={**auth, **JSON})
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("value", [1e308, -1.7e308, 1e16])
def test_values_too_large_to_compute_with_are_422(client: TestClient, auth: dict[str, str],
                                                  value: float) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    body = {"readings": [{"ts": "2024-01-01T00:00:00Z", "value": value}]}
    assert_problem(client.post(f"/v1/series/{sid}/readings", json=body, headers=auth), 422,
                   "value")
    csv = f"ts,value\n2024-01-01 00:00,{value!r}\n".encode()
    assert_problem(client.post(f"/v1/series/{sid}/readings", content=csv,
                               headers={**auth, "Content-Type": "text/csv"}), 422, "value")
    assert readings(client, auth, sid) == []


@pytest.mark.parametrize(("spec", "field", "expected"), [
    ({"units": 0}, "units", "greater than or equal to 1"),
    ({"units": True}, "units", "a valid integer"),
    ({"window": 4}, "window", "greater than or equal to 8"),
    ({"dropout": 1}, "dropout", "less than 1"),
    ({"cell": "lstmx"}, "cell", "'lstm', 'gru' or 'simple_rnn'"),
    ({"stateful": "yes"}, "stateful", "a valid boolean"),
    ({"epochs": 10**9}, "epochs", "less than or equal to 2000"),
])
def test_a_bad_spec_field_is_422_naming_field_value_and_bound(
        client: TestClient, auth: dict[str, str], spec: dict[str, object], field: str,
        expected: str) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    response = client.post("/v1/models", json={"series_ids": [sid], "spec": spec}, headers=auth)
    problem = assert_problem(response, 422, f"spec.{field}")
    (error,) = problem["errors"]
    assert error["value"] == spec[field] and expected in error["message"]
    assert f"`spec.{field}` (got {spec[field]!r})" in problem["detail"]
    assert client.get("/v1/models", headers=auth).json()["count"] == 0
CSV_HEADERS = {"Content-Type": "text/csv"}


@pytest.mark.parametrize("body", [b"", b"\n", b" ", b"\r\n", b"  \n \r\n"])
def test_an_empty_csv_body_is_422_naming_the_body(client: TestClient, auth: dict[str, str],
                                                  body: bytes) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    response = client.post(f"/v1/series/{sid}/readings", content=body,
                           headers={**auth, **CSV_HEADERS})
    assert_problem(response, 422, "body")
    assert readings(client, auth, sid) == []


@pytest.mark.parametrize("ts_format", ["%Y%", "abc%", "%Q", "%Y-%m-%d %"])
def test_a_malformed_ts_format_is_422_naming_it(client: TestClient, auth: dict[str, str],
                                                ts_format: str) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    response = client.post(f"/v1/series/{sid}/readings", params={"ts_format": ts_format},
                           content=b"ts,value\n2024-01-01 00:00,1\n",
                           headers={**auth, **CSV_HEADERS})
    problem = assert_problem(response, 422, "ts_format")
    assert problem["errors"][0]["value"] == ts_format
    assert readings(client, auth, sid) == []


def test_a_nul_in_a_csv_value_is_422_naming_the_row(client: TestClient,
                                                    auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    response = client.post(f"/v1/series/{sid}/readings",
                           content=b"ts,value\n2024-01-01 00:00,1\x00\n2024-01-01 01:00,2\n",
                           headers={**auth, **CSV_HEADERS})
    problem = assert_problem(response, 422, "value")
    assert problem["errors"][0]["row"] == 1
    assert readings(client, auth, sid) == []


def test_unknown_keys_in_json_readings_are_422_naming_row_and_key(client: TestClient,
                                                                  auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    body = {"readings": [{"ts": "2024-01-01T00:00:00Z", "value": 1},
                         {"ts": "2024-01-01T01:00:00Z", "value": 2, "valu": 3}]}
    problem = assert_problem(client.post(f"/v1/series/{sid}/readings", json=body, headers=auth),
                             422, "readings[1].valu")
    assert problem["errors"][0]["row"] == 2  # rows count readings from 1
    assert readings(client, auth, sid) == []


BAD_BODIES = {
    "nested": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "not-utf8": (b'{"name": "\xff\xfe"}', "byte 0xff at position 10"),
    "broken-off": (b'{"name": ', "not valid JSON"),
}


@pytest.mark.parametrize("bad", sorted(BAD_BODIES))
@pytest.mark.parametrize("path", ["/v1/series", "/v1/series/{sid}/readings", "/v1/streams",
                                  "/v1/streams/m/readings", "/v1/streams/readings", "/v1/models",
                                  "/v1/keys"])
def test_an_unreadable_json_body_is_the_same_422_on_every_route(
        client: TestClient, auth: dict[str, str], path: str, bad: str) -> None:
    """Deep nesting and invalid UTF-8 were a bare 400 "error parsing the body" on every route
    but uploads; each is now one problem naming the body and what is wrong with it."""
    sid = create_series(client, auth, freq="h")["id"]
    body, says = BAD_BODIES[bad]
    response = client.post(path.format(sid=sid), content=body, headers={**auth, **JSON})
    problem = assert_problem(response, 422, "body")
    assert says in problem["detail"], problem


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("OPTIONS", "/v1/streams/readings", "POST"),
    ("GET", "/v1/streams/readings/readings", "POST"),
    ("OPTIONS", "/v1/series", "GET, POST"),
    ("PUT", "/v1/series/1", "DELETE, GET, PATCH"),
    ("PATCH", "/v1/keys/3", "DELETE"),
])
def test_a_405_allows_the_methods_of_the_path(client: TestClient, auth: dict[str, str],
                                              method: str, path: str, allow: str) -> None:
    """`OPTIONS /v1/streams/readings` said `Allow: GET` (the stream route's), where only POST
    exists."""
    response = client.request(method, path, headers=auth)
    assert_problem(response, 405)
    assert response.headers["Allow"] == allow


def test_a_stream_cannot_take_the_bulk_posts_path_as_its_id(client: TestClient,
                                                            auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    assert_problem(client.post("/v1/streams", json={"series_id": sid, "stream_id": "readings"},
                               headers=auth), 422, "stream_id")
