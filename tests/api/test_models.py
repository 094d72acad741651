"""Listing models: newest first, paged in the database, filtered by series."""

from fastapi.testclient import TestClient

from tests.api.helpers import assert_problem, create_series, fill_series


def test_models_page_newest_first(client: TestClient, auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    other = create_series(client, auth, name="other", freq="h")["id"]
    fill_series(client, auth, sid)
    fill_series(client, auth, other)
    ids = [client.post("/v1/models", json={"series_ids": [s], "spec": {"units": 4}},
                       headers=auth).json()["model"]["id"] for s in (sid, sid, sid, other)]
    page = client.get(f"/v1/models?series_id={sid}&limit=2&offset=1", headers=auth).json()
    assert page["count"] == 3
    assert [m["id"] for m in page["data"]] == [ids[1], ids[0]]
    assert client.get("/v1/models", headers=auth).json()["count"] == 4


def test_a_forecast_while_the_first_model_trains_names_its_job(client: TestClient,
                                                               auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    never = assert_problem(client.get(f"/v1/series/{sid}/forecast", headers=auth), 409)
    assert "train one with POST /v1/models" in never["detail"]
    fill_series(client, auth, sid)
    accepted = client.post("/v1/models", json={"series_ids": [sid], "spec": {"units": 4}},
                           headers=auth).json()
    job_id, model_id = accepted["job"]["id"], accepted["model"]["id"]
    for answer in (client.get(f"/v1/series/{sid}/forecast", headers=auth),
                   client.post("/v1/streams", json={"series_id": sid}, headers=auth)):
        problem = assert_problem(answer, 409)
        assert f"model {model_id} is training as job {job_id}" in problem["detail"]
        assert f"GET /v1/jobs/{job_id}" in problem["detail"] and "POST /v1/models" not in \
            problem["detail"]
        assert (problem["job_id"], problem["model_id"]) == (job_id, model_id)
