"""Another tenant's models, jobs, forecasts and streams do not exist for a key: 404, unchanged."""

from fastapi.testclient import TestClient

from tests.api.helpers import assert_problem, create_series, fill_series


def test_another_tenants_models_and_jobs_are_404(client: TestClient, auth: dict[str, str],
                                                 other_auth: dict[str, str]) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    fill_series(client, auth, sid)
    accepted = client.post("/v1/models", json={"series_ids": [sid], "spec": {"units": 4}},
                           headers=auth)
    assert accepted.status_code == 202, accepted.text
    model_id, job_id = accepted.json()["model"]["id"], accepted.json()["job"]["id"]
    for method, path in [("GET", f"/v1/models/{model_id}"),
                         ("POST", f"/v1/models/{model_id}/promote"),
                         ("DELETE", f"/v1/models/{model_id}"),
                         ("GET", f"/v1/jobs/{job_id}"),
                         ("POST", f"/v1/jobs/{job_id}/cancel"),
                         ("GET", f"/v1/models?series_id={sid}"),
                         ("GET", f"/v1/series/{sid}/forecast"),
                         ("GET", f"/v1/series/{sid}/forecast?model_id={model_id}"),
                         ("POST", "/v1/streams")]:
        body = {"series_id": sid} if path == "/v1/streams" else None
        assert_problem(client.request(method, path, headers=other_auth, json=body), 404)
    assert client.get("/v1/jobs", headers=other_auth).json() == {"data": [], "count": 0}
    assert client.get("/v1/models", headers=other_auth).json() == {"data": [], "count": 0}
    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "queued" and not job["cancel_requested"]
    assert client.get(f"/v1/models/{model_id}", headers=auth).json()["promoted_at"] is None
