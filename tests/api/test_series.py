"""Series: create, list, read, delete, with their validation."""

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.helpers import CSV, assert_problem, count_rows, create_series


@pytest.mark.parametrize("freq,canonical", [("15min", "15min"), ("30min", "30min"), ("h", "h"),
                                            ("D", "D"), ("W-SUN", "W-SUN")])
def test_create_and_read(client: TestClient, auth: dict[str, str], freq: str,
                         canonical: str) -> None:
    created = create_series(client, auth, freq=freq)
    assert created["freq"] == canonical
    detail = client.get(f"/v1/series/{created['id']}", headers=auth).json()
    assert detail["name"] == "building-7" and detail["readings"] == 0
    assert detail["created_at"].endswith("Z") or "+00:00" in detail["created_at"]


@pytest.mark.parametrize("body,field", [
    ({"name": "x", "freq": "every tuesday"}, "freq"),
    ({"name": "x", "freq": "500ms"}, "freq"),
    ({"name": "", "freq": "h"}, "name"),
    ({"freq": "h"}, "name"),
    ({"name": "x", "freq": "h", "colour": "red"}, "colour"),
    ({"name": "x", "freq": "h", "timezone": "Europe/Atlantis"}, "timezone"),
])
def test_bad_series_is_422_and_creates_nothing(client: TestClient, auth: dict[str, str],
                                               body: dict[str, str], field: str) -> None:
    problem = assert_problem(client.post("/v1/series", json=body, headers=auth), 422, field)
    assert any(e["field"] == field for e in problem["errors"])
    assert client.get("/v1/series", headers=auth).json()["count"] == 0


def test_duplicate_name_is_409(client: TestClient, auth: dict[str, str]) -> None:
    create_series(client, auth)
    assert_problem(client.post("/v1/series", json={"name": "building-7", "freq": "h"},
                               headers=auth), 409, "name")
    assert client.get("/v1/series", headers=auth).json()["count"] == 1


def test_list_pages(client: TestClient, auth: dict[str, str]) -> None:
    for i in range(3):
        create_series(client, auth, name=f"s{i}")
    page = client.get("/v1/series?limit=2", headers=auth).json()
    assert page["count"] == 3 and [s["name"] for s in page["data"]] == ["s0", "s1"]
    assert_problem(client.get("/v1/series?limit=0", headers=auth), 422, "query.limit")


def test_delete_removes_readings(client: TestClient, auth: dict[str, str],
                                 settings: Settings) -> None:
    sid = create_series(client, auth)["id"]
    client.post(f"/v1/series/{sid}/readings", headers={**auth, **CSV},
                content=b"ts,value\n2024-01-01 00:00,1\n2024-01-01 00:30,2\n")
    assert count_rows(settings.database_url, "readings") == 2
    assert client.delete(f"/v1/series/{sid}", headers=auth).status_code == 204
    assert count_rows(settings.database_url, "readings") == 0
    assert_problem(client.get(f"/v1/series/{sid}", headers=auth), 404)
    # No orphans: a new series reusing the name starts empty.
    again = create_series(client, auth)
    assert client.get(f"/v1/series/{again['id']}", headers=auth).json()["readings"] == 0
    assert_problem(client.get(f"/v1/series/{sid}/readings", headers=auth), 404)


@pytest.mark.parametrize("path", ["/v1/series/99999999999999999999999", "/v1/models/-1",
                                  "/v1/jobs/0", "/v1/series?offset=99999999999999999999"])
def test_out_of_range_ids_are_422_not_500(client: TestClient, auth: dict[str, str],
                                          path: str) -> None:
    assert_problem(client.get(path, headers=auth), 422)


def test_timezone_is_kept_and_readings_stay_utc(client: TestClient, auth: dict[str, str]) -> None:
    assert create_series(client, auth, name="utc")["timezone"] == "UTC"
    created = client.post("/v1/series", json={"name": "london", "freq": "h",
                                              "timezone": "Europe/London"}, headers=auth).json()
    assert created["timezone"] == "Europe/London"
    body = "ts,value\n2024-03-31T00:00:00+00:00,1\n2024-03-31T03:00:00+01:00,2\n"
    assert client.post(f"/v1/series/{created['id']}/readings", content=body.encode(),
                       headers={**auth, **CSV}).status_code == 200
    data = client.get(f"/v1/series/{created['id']}/readings", headers=auth).json()["data"]
    assert [r["ts"] for r in data] == ["2024-03-31T00:00:00Z", "2024-03-31T02:00:00Z"]
    assert client.get(f"/v1/series/{created['id']}", headers=auth).json()["timezone"] == (
        "Europe/London")
