"""Uploading readings: formats, grid, conflicts, all-or-nothing, limits; reading them back."""

import json

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.api.helpers import CSV, assert_problem, create_series, readings

JSON = {"Content-Type": "application/json"}


def post_csv(client: TestClient, auth: dict[str, str], sid: int, body: str,
             query: str = "") -> object:
    return client.post(f"/v1/series/{sid}/readings{query}", headers={**auth, **CSV},
                       content=body.encode())


def test_csv_upload_and_read_back(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    response = post_csv(client, auth, sid,
                        "timestamp,kwh\n2024-01-01 00:30,2.5\n2024-01-01 00:00,1\n"
                        "2024-01-01 01:00,\n")
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert response.json() == {  # type: ignore[attr-defined]
        "received": 3, "inserted": 3, "updated": 0, "unchanged": 0,
        "first_ts": "2024-01-01T00:00:00Z", "last_ts": "2024-01-01T01:00:00Z",
        "covariates": []}
    assert readings(client, auth, sid) == [
        {"ts": "2024-01-01T00:00:00Z", "value": 1.0},
        {"ts": "2024-01-01T00:30:00Z", "value": 2.5},
        {"ts": "2024-01-01T01:00:00Z", "value": None}]
    text = client.get(f"/v1/series/{sid}/readings?start=2024-01-01T00:30:00&limit=1",
                      headers={**auth, "Accept": "text/csv"})
    assert text.headers["content-type"].startswith("text/csv")
    assert text.text.splitlines() == ["ts,value", "2024-01-01T00:30:00Z,2.5"]


def test_uci_style_csv_with_semicolons_and_decimal_commas(client: TestClient,
                                                          auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="15min")["id"]
    body = ('"";"MT_001";"MT_002"\n"2011-01-01 00:15:00";0;2,86\n'
            '"2011-01-01 00:30:00";0;2,5\n')
    response = post_csv(client, auth, sid, body, "?sep=;&decimal=,&value_col=MT_002")
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert [r["value"] for r in readings(client, auth, sid)] == [2.86, 2.5]


def test_json_upload_with_zones_and_nulls(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    body = {"readings": [{"ts": "2024-01-01T01:00:00+01:00", "value": 5},
                         {"ts": "2024-01-01T00:30:00Z", "value": None}]}
    response = client.post(f"/v1/series/{sid}/readings", json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert readings(client, auth, sid) == [{"ts": "2024-01-01T00:00:00Z", "value": 5.0},
                                           {"ts": "2024-01-01T00:30:00Z", "value": None}]


BAD_CSV = [
    ("ts,value\n2024-01-01 00:10,1\n", "ts", "grid"),
    ("ts,value\n2024-01-01 00:00,NaN\n", "value", "finite"),
    ("ts,value\n2024-01-01 00:00,inf\n", "value", "finite"),
    ("ts,value\n2024-01-01 00:00,abc\n", "value", "finite"),
    ("ts,value\nyesterday,1\n", "ts", "timestamp"),
    ("ts,value\n2024-01-01 00:00,1\n2024-01-01 00:00,2\n", "ts", "twice"),
]


@pytest.mark.parametrize("body,field,word", BAD_CSV)
def test_bad_csv_is_422_with_rows_and_stores_nothing(client: TestClient, auth: dict[str, str],
                                                     body: str, field: str, word: str) -> None:
    sid = create_series(client, auth)["id"]
    good = "ts,value\n2024-01-01 01:00,9\n"
    assert post_csv(client, auth, sid, good).status_code == 200  # type: ignore[attr-defined]
    problem = assert_problem(post_csv(client, auth, sid, body + "2024-01-01 01:30,3\n"), 422,
                             field)
    assert word in json.dumps(problem["errors"])
    assert all("row" in e for e in problem["errors"])
    assert readings(client, auth, sid) == [{"ts": "2024-01-01T01:00:00Z", "value": 9.0}]


@pytest.mark.parametrize("body,field", [
    ('{"readings": [{"ts": "2024-01-01T00:00:00", "value": NaN}]}', None),
    ('{"readings": [{"ts": "2024-01-01T00:00:00", "value": "1.5"}]}', "readings[0].value"),
    ('{"readings": [{"ts": "2024-01-01T00:00:00", "value": true}]}', "readings[0].value"),
    ('{"readings": [{"ts": 1704067200, "value": 1}]}', "readings[0].ts"),
    ('{"readings": [{"ts": "2024-01-01T00:00:00"}]}', "readings[0]"),
    ('{"values": []}', "readings"),
    ('{"readings": []}', "readings"),
    ("not json", None),
])
def test_bad_json_is_422(client: TestClient, auth: dict[str, str], body: str,
                         field: str | None) -> None:
    sid = create_series(client, auth)["id"]
    response = client.post(f"/v1/series/{sid}/readings", content=body.encode(),
                           headers={**auth, **JSON})
    assert_problem(response, 422, field)
    assert readings(client, auth, sid) == []


def test_conflicts(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    first = "ts,value\n2024-01-01 00:00,1\n2024-01-01 00:30,2\n"
    assert post_csv(client, auth, sid, first).status_code == 200  # type: ignore[attr-defined]
    same = post_csv(client, auth, sid, first)
    assert same.json()["unchanged"] == 2 and same.json()["inserted"] == 0  # type: ignore
    changed = "ts,value\n2024-01-01 00:30,7\n2024-01-01 01:00,3\n"
    problem = assert_problem(post_csv(client, auth, sid, changed), 409, "value")
    assert problem["errors"][0]["ts"] == "2024-01-01T00:30:00Z"
    assert [r["value"] for r in readings(client, auth, sid)] == [1.0, 2.0]
    replaced = post_csv(client, auth, sid, changed, "?on_conflict=replace")
    assert replaced.json()["updated"] == 1 and replaced.json()["inserted"] == 1  # type: ignore
    assert [r["value"] for r in readings(client, auth, sid)] == [1.0, 7.0, 3.0]


def test_bad_options_and_media_types(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    body = "ts,value\n2024-01-01 00:00,1\n"
    assert_problem(post_csv(client, auth, sid, body, "?ts_col=time"), 422, "ts_col")
    assert_problem(post_csv(client, auth, sid, body, "?decimal=x"), 422, "query.decimal")
    assert_problem(post_csv(client, auth, sid, body, "?sep=;;"), 422, "query.sep")
    assert_problem(post_csv(client, auth, sid, body, "?on_conflict=merge"), 422,
                   "query.on_conflict")
    assert_problem(client.post(f"/v1/series/{sid}/readings", content=b"x",
                               headers={**auth, "Content-Type": "text/plain"}), 415)
    assert_problem(post_csv(client, auth, 999_999, body), 404)
    assert readings(client, auth, sid) == []


def test_body_over_limit_is_413(settings: Settings, auth: dict[str, str]) -> None:
    settings.max_upload_bytes = 100
    with TestClient(create_app(settings)) as client:
        sid = create_series(client, auth)["id"]
        rows = "".join(f"2024-01-01 {h:02d}:00,{h}\n" for h in range(20))
        assert_problem(post_csv(client, auth, sid, "ts,value\n" + rows), 413)
        assert readings(client, auth, sid) == []


def test_day_first_dates_are_stored_right_or_refused(client: TestClient,
                                                     auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    body = "".join(f"{d}/08/2000 22:00,{d}\n" for d in range(10, 15))
    response = post_csv(client, auth, sid, "ts,value\n" + body)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert [r["ts"] for r in readings(client, auth, sid)] == [
        f"2000-08-{d}T22:00:00Z" for d in range(10, 15)]
    ambiguous = "ts,value\n01/02/2001 00:00,1\n02/02/2001 00:00,2\n"
    problem = assert_problem(post_csv(client, auth, sid, ambiguous), 422, "dayfirst")
    assert "ts_format" in problem["detail"]
    month_first = post_csv(client, auth, sid, ambiguous, "?dayfirst=false")
    assert month_first.status_code == 200, month_first.text  # type: ignore[attr-defined]
    assert month_first.json()["first_ts"] == "2001-01-02T00:00:00Z"  # type: ignore
    mixed = "ts,value\n2001-03-01 00:00,1\n02/03/2001 00:00,2\n"
    problem = assert_problem(post_csv(client, auth, sid, mixed), 422, "ts")
    assert [e["row"] for e in problem["errors"]] == [2]


def test_upload_hints_for_separator_and_stripped_newlines(client: TestClient,
                                                          auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    problem = assert_problem(post_csv(client, auth, sid, "timestamp;load\n2000-08-28 00:00;23100,5\n"),
                             422, "sep")
    assert "sep=;" in problem["detail"] and "decimal=," in problem["detail"]
    problem = assert_problem(post_csv(client, auth, sid, "timestamp,load2000-08-28 00:00,23100"),
                             422, "body")
    assert "--data-binary" in problem["detail"]
    assert_problem(post_csv(client, auth, sid, "ts,value\n2024-01-01 00:00,1\n",
                            "?ts_format=nope"), 422, "query.ts_format")
    assert readings(client, auth, sid) == []
