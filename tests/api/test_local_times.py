"""Timestamps without an offset on a series with a time zone are that zone's local times."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import CSV, assert_problem, count_rows, readings


def berlin_series(client: TestClient, auth: dict[str, str], freq: str = "h") -> int:
    response = client.post("/v1/series", json={"name": f"berlin-{freq}", "freq": freq,
                                                "timezone": "Europe/Berlin"}, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def upload(client: TestClient, auth: dict[str, str], sid: int, body: str,
           query: str = "") -> Any:
    return client.post(f"/v1/series/{sid}/readings{query}", content=body.encode(),
                       headers={**auth, **CSV})


def test_naive_times_are_local_and_offsets_stay_exact(client: TestClient,
                                                      auth: dict[str, str]) -> None:
    sid = berlin_series(client, auth)
    # Day-first dates in winter (UTC+1), an ISO time in summer (UTC+2), an instant in UTC.
    response = upload(client, auth, sid, "ts,value\n04/03/2024 00:00,1\n04/03/2024 01:00,2\n",
                      "?dayfirst=true")
    assert response.status_code == 200, response.text
    assert response.json()["first_ts"] == "2024-03-03T23:00:00Z"
    body = {"readings": [{"ts": "2024-07-01T12:00:00", "value": 3},
                         {"ts": "2024-07-01T12:00:00Z", "value": 4}]}
    assert client.post(f"/v1/series/{sid}/readings", json=body, headers=auth).status_code == 200
    assert [r["ts"] for r in readings(client, auth, sid)] == [
        "2024-03-03T23:00:00Z", "2024-03-04T00:00:00Z", "2024-07-01T10:00:00Z",
        "2024-07-01T12:00:00Z"]
    detail = client.get(f"/v1/series/{sid}", headers=auth).json()
    assert detail["first_ts"] == "2024-03-03T23:00:00Z"


def test_a_local_time_the_clocks_skip_is_refused_naming_its_row(
        client: TestClient, auth: dict[str, str], database_url: str) -> None:
    sid = berlin_series(client, auth)
    body = "ts,value\n2024-03-31 01:00,1\n2024-03-31 02:00,2\n2024-03-31 03:00,3\n"
    problem = assert_problem(upload(client, auth, sid, body), 422, "ts")
    assert "do not exist in Europe/Berlin" in problem["detail"]
    assert [(e["row"], e["value"]) for e in problem["errors"]] == [(2, "2024-03-31 02:00")]
    json_body = {"readings": [{"ts": "2024-03-31T02:30:00", "value": 1}]}
    problem = assert_problem(client.post(f"/v1/series/{berlin_series(client, auth, '30min')}"
                                         "/readings", json=json_body, headers=auth), 422, "ts")
    assert "does not exist in Europe/Berlin" in problem["errors"][0]["message"]
    assert count_rows(database_url, "readings") == 0


AUTUMN = "ts,value\n2024-10-27 01:00,1\n2024-10-27 02:00,2\n2024-10-27 02:00,3\n" \
         "2024-10-27 03:00,4\n"


def test_a_repeated_local_time_needs_ambiguous(client: TestClient, auth: dict[str, str],
                                               database_url: str) -> None:
    sid = berlin_series(client, auth)
    problem = assert_problem(upload(client, auth, sid, AUTUMN), 422, "ts")
    assert "occur twice in Europe/Berlin" in problem["detail"]
    assert "ambiguous=infer" in problem["detail"]
    assert [e["row"] for e in problem["errors"]] == [2, 3]
    assert count_rows(database_url, "readings") == 0
    # A complete autumn night: the order of the rows tells the two 02:00s apart.
    response = upload(client, auth, sid, AUTUMN, "?ambiguous=infer")
    assert response.status_code == 200, response.text
    assert [r["ts"] for r in readings(client, auth, sid)] == [
        "2024-10-26T23:00:00Z", "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z",
        "2024-10-27T02:00:00Z"]


@pytest.mark.parametrize(("choice", "stored"), [("earliest", "2024-10-27T00:00:00Z"),
                                                ("latest", "2024-10-27T01:00:00Z")])
def test_earliest_or_latest_picks_one_moment(client: TestClient, auth: dict[str, str],
                                             choice: str, stored: str) -> None:
    sid = berlin_series(client, auth)
    response = upload(client, auth, sid, "ts,value\n2024-10-27 02:00,1\n", f"?ambiguous={choice}")
    assert response.status_code == 200, response.text
    assert [r["ts"] for r in readings(client, auth, sid)] == [stored]


def test_infer_without_the_whole_hour_and_an_unknown_choice_are_refused(
        client: TestClient, auth: dict[str, str]) -> None:
    sid = berlin_series(client, auth)
    problem = assert_problem(upload(client, auth, sid, "ts,value\n2024-10-27 02:00,1\n",
                                    "?ambiguous=infer"), 422, "ambiguous")
    assert "ambiguous=earliest" in problem["detail"]
    assert_problem(upload(client, auth, sid, AUTUMN, "?ambiguous=sometimes"), 422,
                   "query.ambiguous")


def test_a_utc_series_reads_naive_times_as_utc(client: TestClient, auth: dict[str, str]) -> None:
    sid = client.post("/v1/series", json={"name": "utc", "freq": "h"}, headers=auth).json()["id"]
    assert upload(client, auth, sid, "ts,value\n2024-03-31 02:00,1\n").status_code == 200
    assert readings(client, auth, sid)[0]["ts"] == "2024-03-31T02:00:00Z"


@pytest.mark.parametrize("freq", ["D", "W-SAT", "MS"])
def test_dates_of_a_daily_or_longer_series_name_the_day(client: TestClient, auth: dict[str, str],
                                                        freq: str) -> None:
    # Its grid sits at midnight UTC: a date is that day's reading, not Berlin's midnight.
    sid = berlin_series(client, auth, freq)
    day = {"D": "2024-03-04", "W-SAT": "2024-03-02", "MS": "2024-03-01"}[freq]
    response = upload(client, auth, sid, f"ts,value\n{day},1\n")
    assert response.status_code == 200, response.text
    assert readings(client, auth, sid)[0]["ts"] == f"{day}T00:00:00Z"
