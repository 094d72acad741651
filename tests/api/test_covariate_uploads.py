"""CSV uploads with covariate columns: the series and its linked covariates, all or nothing."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.helpers import CSV, assert_problem, count_rows, create_series, readings

# Half-hourly load with hourly temperature: the :30 cells of temperature are empty, and the
# last two rows (no load yet) are the temperature forecast.
LOAD_WITH_TEMPERATURE = (
    "timestamp,load,temperature_c\n"
    "2024-01-01 00:00,10,5.0\n"
    "2024-01-01 00:30,11,\n"
    "2024-01-01 01:00,,6.0\n"
    "2024-01-01 01:30,12,\n"
    "2024-01-01 02:00,,7.5\n"
    "2024-01-01 03:00,,8.0\n"
)


@pytest.fixture
def linked(client: TestClient, auth: dict[str, str]) -> dict[str, int]:
    temperature = create_series(client, auth, name="temperature", freq="h")["id"]
    load = client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "30min",
        "covariates": [{"series_id": temperature, "name": "temperature_c"},
                       {"series_id": temperature, "name": "air"}]}).json()["id"]
    return {"load": load, "temperature": temperature}


def upload(client: TestClient, auth: dict[str, str], series_id: int, body: str,
           **params: str) -> Any:
    return client.post(f"/v1/series/{series_id}/readings", params=params,
                       content=body.encode(), headers={**auth, **CSV})


def values(rows: list[dict[str, Any]]) -> list[tuple[str, float | None]]:
    return [(r["ts"][11:16], r["value"]) for r in rows]


def test_covariate_columns_feed_the_linked_series(client: TestClient, auth: dict[str, str],
                                                  linked: dict[str, int]) -> None:
    answer = upload(client, auth, linked["load"], LOAD_WITH_TEMPERATURE,
                    covariate_cols="temperature_c")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["received"], body["inserted"]) == (4, 4)
    assert body["covariates"] == [{"name": "temperature_c", "series_id": linked["temperature"],
                                   "received": 4, "inserted": 4, "updated": 0, "unchanged": 0}]
    # The load keeps its missing 01:00 but not the rows past its last value.
    assert values(readings(client, auth, linked["load"])) == [
        ("00:00", 10.0), ("00:30", 11.0), ("01:00", None), ("01:30", 12.0)]
    assert values(readings(client, auth, linked["temperature"])) == [
        ("00:00", 5.0), ("01:00", 6.0), ("02:00", 7.5), ("03:00", 8.0)]


def test_a_newer_forecast_replaces_the_stored_one(client: TestClient, auth: dict[str, str],
                                                  linked: dict[str, int]) -> None:
    upload(client, auth, linked["load"], LOAD_WITH_TEMPERATURE, covariate_cols="temperature_c")
    newer = "ts,load,t\n2024-01-01 02:00,13,7.0\n2024-01-01 03:00,,9.0\n"
    assert_problem(upload(client, auth, linked["load"], newer, covariate_cols="t:air"), 409, "t")
    answer = upload(client, auth, linked["load"], newer, covariate_cols="t:air",
                    on_conflict="replace")
    assert answer.status_code == 200, answer.text
    assert answer.json()["covariates"][0]["updated"] == 2
    assert values(readings(client, auth, linked["temperature"]))[-2:] == [
        ("02:00", 7.0), ("03:00", 9.0)]


@pytest.mark.parametrize("params,body,field,value", [
    ({"covariate_cols": "wind"}, LOAD_WITH_TEMPERATURE, "covariate_cols", "wind"),
    ({"covariate_cols": "temperature_c:wind"}, LOAD_WITH_TEMPERATURE, "covariate_cols",
     "temperature_c:wind"),
    ({"covariate_cols": "air"}, LOAD_WITH_TEMPERATURE, "covariate_cols", "air"),
    ({"covariate_cols": "temperature_c,temperature_c"}, LOAD_WITH_TEMPERATURE,
     "covariate_cols", "temperature_c,temperature_c"),
    ({"covariate_cols": "load:air"}, LOAD_WITH_TEMPERATURE, "covariate_cols", "load"),
    ({"covariate_cols": ":x"}, LOAD_WITH_TEMPERATURE, "covariate_cols", ":x"),
    ({"covariate_cols": "temperature_c"},
     "timestamp,load,temperature_c\n2024-01-01 00:00,10,5\n2024-01-01 00:30,11,5.5\n",
     "covariate_cols", "temperature_c"),
    ({"covariate_cols": "temperature_c"},
     "timestamp,load,temperature_c\n2024-01-01 00:00,10,5\n2024-01-01 01:00,11,warm\n",
     "temperature_c", "warm"),
    ({"covariate_cols": "temperature_c"},
     "timestamp,load,temperature_c\n2024-01-01 00:00,,5\n", "value_col", "load"),
])
def test_bad_covariate_upload_stores_nothing(client: TestClient, auth: dict[str, str],
                                             settings: Settings, linked: dict[str, int],
                                             params: dict[str, str], body: str, field: str,
                                             value: Any) -> None:
    problem = assert_problem(upload(client, auth, linked["load"], body, **params), 422, field)
    assert any(e["field"] == field and e["value"] == value for e in problem["errors"]), problem
    assert count_rows(settings.database_url, "readings") == 0


def test_a_conflict_in_a_covariate_undoes_the_whole_upload(
        client: TestClient, auth: dict[str, str], settings: Settings,
        linked: dict[str, int]) -> None:
    client.post(f"/v1/series/{linked['temperature']}/readings", headers={**auth, **CSV},
                content=b"ts,value\n2024-01-01 03:00,0\n")
    assert_problem(upload(client, auth, linked["load"], LOAD_WITH_TEMPERATURE,
                          covariate_cols="temperature_c"), 409, "temperature_c")
    assert count_rows(settings.database_url, "readings") == 1


def test_covariate_cols_without_a_link_or_on_json_are_refused(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    sid = create_series(client, auth, name="alone")["id"]
    assert_problem(upload(client, auth, sid, LOAD_WITH_TEMPERATURE,
                          covariate_cols="temperature_c"), 422, "covariate_cols")
    answer = client.post(f"/v1/series/{sid}/readings", params={"covariate_cols": "t"},
                         json={"readings": [{"ts": "2024-01-01T00:00:00Z", "value": 1}]},
                         headers=auth)
    assert_problem(answer, 422, "covariate_cols")
    assert count_rows(settings.database_url, "readings") == 0


def test_a_covariate_column_is_never_the_default_value_column(
        client: TestClient, auth: dict[str, str], linked: dict[str, int]) -> None:
    body = "timestamp,temperature_c,load\n2024-01-01 00:00,5,10\n"
    answer = upload(client, auth, linked["load"], body, covariate_cols="temperature_c")
    assert answer.status_code == 200, answer.text
    assert values(readings(client, auth, linked["load"])) == [("00:00", 10.0)]
    assert values(readings(client, auth, linked["temperature"])) == [("00:00", 5.0)]
