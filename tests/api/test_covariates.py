"""Covariate links and calendars of a series: set on create and update, shown, refused when bad."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.helpers import assert_problem, count_rows, create_series


def link(series_id: int, name: str = "temperature", known_future: bool = True) -> dict[str, Any]:
    return {"series_id": series_id, "name": name, "known_future": known_future}


def patch(client: TestClient, auth: dict[str, str], series_id: int, body: dict[str, Any]) -> Any:
    return client.patch(f"/v1/series/{series_id}", json=body, headers=auth)


def test_create_with_covariates_and_calendar(client: TestClient, auth: dict[str, str]) -> None:
    temperature = create_series(client, auth, name="temperature", freq="h")
    created = client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "30min", "holidays": "US",
        "covariates": [link(temperature["id"])],
        "special_days": [{"date": "2024-12-27", "label": "plant shutdown"}]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["covariates"] == [link(temperature["id"])]
    assert body["holidays"] == "US"
    assert body["special_days"] == [{"date": "2024-12-27", "label": "plant shutdown"}]
    detail = client.get(f"/v1/series/{body['id']}", headers=auth).json()
    assert detail["covariates"] == body["covariates"] and detail["holidays"] == "US"
    assert detail["special_days"] == body["special_days"]
    listed = {s["name"]: s for s in client.get("/v1/series", headers=auth).json()["data"]}
    assert listed["load"]["covariates"] == body["covariates"]
    assert listed["temperature"]["covariates"] == [] and listed["temperature"]["holidays"] is None


def test_patch_changes_only_what_is_sent(client: TestClient, auth: dict[str, str]) -> None:
    first = create_series(client, auth, name="t1", freq="h")["id"]
    second = create_series(client, auth, name="t2", freq="h")["id"]
    sid = create_series(client, auth, name="load")["id"]
    answer = patch(client, auth, sid, {"covariates": [link(first)], "holidays": "GB-ENG",
                                       "description": "main meter"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["covariates"] == [link(first)] and answer.json()["holidays"] == "GB-ENG"
    answer = patch(client, auth, sid, {"covariates": [link(second, "wind", False),
                                                      link(first, "air")]})
    assert [c["name"] for c in answer.json()["covariates"]] == ["air", "wind"]
    assert answer.json()["holidays"] == "GB-ENG" and answer.json()["description"] == "main meter"
    answer = patch(client, auth, sid, {"holidays": None, "name": "load-2"})
    assert answer.json()["holidays"] is None and answer.json()["name"] == "load-2"
    assert len(answer.json()["covariates"]) == 2
    assert patch(client, auth, sid, {"covariates": []}).json()["covariates"] == []


def test_patch_of_a_missing_series_is_404(client: TestClient, auth: dict[str, str],
                                          other_auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    assert_problem(patch(client, other_auth, sid, {"holidays": "US"}), 404)
    assert_problem(patch(client, auth, sid + 1, {"holidays": "US"}), 404)
    assert client.get(f"/v1/series/{sid}", headers=auth).json()["holidays"] is None


def test_rename_to_a_taken_name_is_409(client: TestClient, auth: dict[str, str]) -> None:
    create_series(client, auth, name="a")
    sid = create_series(client, auth, name="b")["id"]
    assert_problem(patch(client, auth, sid, {"name": "a", "holidays": "US"}), 409, "name")
    detail = client.get(f"/v1/series/{sid}", headers=auth).json()
    assert detail["name"] == "b" and detail["holidays"] is None


@pytest.mark.parametrize("body,field", [
    ({"holidays": "XX"}, "holidays"),
    ({"holidays": "US-XX"}, "holidays"),
    ({"holidays": ""}, "holidays"),
    ({"special_days": [{"date": "2024-12-27", "label": "a"},
                       {"date": "2024-12-27", "label": "b"}]}, "special_days"),
    ({"special_days": [{"date": "2024-02-30", "label": "a"}]}, "special_days.0.date"),
    ({"special_days": [{"date": "2024-12-27", "label": ""}]}, "special_days.0.label"),
    ({"covariates": [{"series_id": 1, "name": "air temperature"}]}, "covariates.0.name"),
    ({"covariates": [{"series_id": 0, "name": "t"}]}, "covariates.0.series_id"),
    ({"covariates": [{"series_id": 1, "name": "t", "lag": 3}]}, "covariates.0.lag"),
])
def test_bad_calendar_or_link_is_422_and_stores_nothing(
        client: TestClient, auth: dict[str, str], settings: Settings, body: dict[str, Any],
        field: str) -> None:
    create_series(client, auth, name="other")
    problem = assert_problem(client.post("/v1/series", headers=auth,
                                         json={"name": "x", "freq": "h", **body}), 422, field)
    assert any(e["field"] == field and "value" in e for e in problem["errors"])
    assert client.get("/v1/series", headers=auth).json()["count"] == 1
    assert count_rows(settings.database_url, "series_covariates") == 0


def test_duplicate_covariate_names_are_422(client: TestClient, auth: dict[str, str],
                                           settings: Settings) -> None:
    a = create_series(client, auth, name="a")["id"]
    b = create_series(client, auth, name="b")["id"]
    problem = assert_problem(client.post("/v1/series", headers=auth, json={
        "name": "x", "freq": "h", "covariates": [link(a), link(b)]}), 422, "covariates")
    assert problem["errors"][0]["value"] == ["temperature", "temperature"]
    assert client.get("/v1/series", headers=auth).json()["count"] == 2
    assert count_rows(settings.database_url, "series_covariates") == 0


def test_another_tenants_series_looks_missing(client: TestClient, auth: dict[str, str],
                                              other_auth: dict[str, str],
                                              settings: Settings) -> None:
    theirs = create_series(client, other_auth, name="their-temperature")["id"]
    missing = theirs + 100
    answers = [client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "h", "covariates": [link(sid)]}) for sid in (theirs, missing)]
    bodies = [assert_problem(a, 404, "covariates[0].series_id") for a in answers]
    assert [b["errors"][0]["value"] for b in bodies] == [theirs, missing]
    assert bodies[0]["detail"] == bodies[1]["detail"].replace(str(missing), str(theirs))
    assert client.get("/v1/series", headers=auth).json()["count"] == 0
    mine = create_series(client, auth, name="load")["id"]
    assert_problem(patch(client, auth, mine, {"covariates": [link(theirs)]}), 404,
                   "covariates[0].series_id")
    assert count_rows(settings.database_url, "series_covariates") == 0


def test_self_and_cycles_are_refused(client: TestClient, auth: dict[str, str],
                                     settings: Settings) -> None:
    a, b, c = (create_series(client, auth, name=n)["id"] for n in "abc")
    assert_problem(patch(client, auth, a, {"covariates": [link(a)]}), 422,
                   "covariates[0].series_id")
    assert patch(client, auth, a, {"covariates": [link(b)]}).status_code == 200
    problem = assert_problem(patch(client, auth, b, {"covariates": [link(c, "x"), link(a)]}),
                             422, "covariates[1].series_id")
    assert "cycle" in problem["detail"]
    assert patch(client, auth, b, {"covariates": [link(c)]}).status_code == 200
    assert_problem(patch(client, auth, c, {"covariates": [link(a)]}), 422,  # a -> b -> c -> a
                   "covariates[0].series_id")
    assert count_rows(settings.database_url, "series_covariates") == 2
    # Replacing a's own links may drop the path that made a link a cycle.
    assert patch(client, auth, a, {"covariates": []}).status_code == 200
    assert patch(client, auth, c, {"covariates": [link(a)]}).status_code == 200


def test_a_series_read_as_covariate_cannot_be_deleted(client: TestClient,
                                                      auth: dict[str, str]) -> None:
    temperature = create_series(client, auth, name="temperature")["id"]
    load = client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "h", "covariates": [link(temperature)]}).json()["id"]
    assert_problem(client.delete(f"/v1/series/{temperature}", headers=auth), 409, "series_id")
    assert client.get(f"/v1/series/{temperature}", headers=auth).status_code == 200
    assert client.delete(f"/v1/series/{load}", headers=auth).status_code == 204
    assert client.delete(f"/v1/series/{temperature}", headers=auth).status_code == 204
