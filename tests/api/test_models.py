"""Listing models: newest first, paged in the database, filtered by series."""

from fastapi.testclient import TestClient

from tests.api.helpers import create_series, fill_series


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
