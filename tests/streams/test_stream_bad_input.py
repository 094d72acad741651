"""Stream readings dated outside what can be stored, and models whose files are gone."""

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.model_files import model_path
from tests.api.helpers import assert_problem
from tests.streams.conftest import install_model, load_series


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z"])
def test_a_stream_reading_dated_out_of_range_is_422(client: TestClient, auth: dict[str, str],
                                                    settings: Settings,
                                                    artifacts: dict[str, Path], ts: str) -> None:
    sid = load_series(client, auth, 48)
    install_model(settings, artifacts["gru_window"], sid)
    assert client.post("/v1/streams", json={"series_id": sid, "stream_id": "m"},
                       headers=auth).status_code == 201
    response = client.post("/v1/streams/m/readings", json={"readings": [{"ts": ts, "value": 1}]},
                           headers=auth)
    assert_problem(response, 422, "readings.0.ts")
    huge = {"readings": [{"ts": "2024-01-03T00:00:00Z", "value": 1.7e308}]}
    assert_problem(client.post("/v1/streams/m/readings", json=huge, headers=auth), 422,
                   "readings.0.value")


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_model_with_unreadable_files_is_503_naming_it(client: TestClient, auth: dict[str, str],
                                                        settings: Settings,
                                                        artifacts: dict[str, Path],
                                                        damage: str) -> None:
    sid = load_series(client, auth, 48)
    model_id = install_model(settings, artifacts["gru_window"], sid)
    folder = model_path(settings.model_dir, model_id)
    if damage == "missing":
        shutil.rmtree(folder)
    else:
        for path in folder.rglob("*"):
            if path.is_file():
                path.write_bytes(b"\x00garbage")
    response = client.get(f"/v1/series/{sid}/forecast", headers=auth)
    problem = assert_problem(response, 503)
    assert problem["model_id"] == model_id and f"Model {model_id}" in problem["detail"]
    assert response.headers["Retry-After"]


@pytest.mark.parametrize(("body", "field", "value"), [
    (b'{"readings": [{"ts": "yesterday", "value": 1}]}', "readings.0.ts", "yesterday"),
    (b'{"readings": [{"ts": "2024-01-03T00:00:00Z", "value": "many"}]}', "readings.0.value",
     "many"),
    (b'{"readings": [{"ts": "2024-01-03T00:00:00Z"}]}', "readings.0.value",
     {"ts": "2024-01-03T00:00:00Z"}),
    (b'{"readings": []}', "readings", []),
    (b'{"readings": [{"ts": "2024-01-03T00:00:00Z", "value": 1}], "extra": 1}', "extra", 1),
    (b'{"readings": [', "body", 14),  # the body, and where its JSON breaks off
])
def test_a_malformed_stream_post_is_422_naming_field_and_value(
        client: TestClient, auth: dict[str, str], body: bytes, field: str, value: object) -> None:
    """The body is checked before the stream is looked up, field by field, as problem+json."""
    response = client.post("/v1/streams/m/readings", content=body,
                           headers={**auth, "Content-Type": "application/json"})
    problem = assert_problem(response, 422, field)
    assert {"field": field, "value": value} in [
        {"field": e["field"], "value": e["value"]} for e in problem["errors"]]


@pytest.mark.parametrize(("query", "field", "value"), [
    ("horizon=0", "query.horizon", "0"), ("level=high", "query.level.0", "high"),
    ("rewarm=maybe", "query.rewarm", "maybe"),
])
def test_a_stream_post_with_a_bad_query_parameter_is_422_naming_it(
        client: TestClient, auth: dict[str, str], query: str, field: str, value: str) -> None:
    body = {"readings": [{"ts": "2024-01-03T00:00:00Z", "value": 1}]}
    problem = assert_problem(client.post(f"/v1/streams/m/readings?{query}", json=body,
                                         headers=auth), 422, field)
    assert problem["errors"][0]["value"] == value


@pytest.mark.parametrize("value", [True, False, "1"])
@pytest.mark.parametrize("path", ["/v1/streams/m/readings", "/v1/streams/readings"])
def test_a_stream_reading_that_is_not_a_number_is_422(client: TestClient, auth: dict[str, str],
                                                      path: str, value: object) -> None:
    """As an upload refuses them: `true` is no reading, nor is the string "1"."""
    reading = {"ts": "2024-01-03T00:00:00Z", "value": value}
    if path == "/v1/streams/readings":
        reading["stream_id"] = "m"
    problem = assert_problem(client.post(path, json={"readings": [reading]}, headers=auth), 422,
                             "readings.0.value")
    assert problem["errors"][0]["value"] == value
