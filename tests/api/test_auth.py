"""Every /v1 route needs a valid key, and another tenant's ids do not exist."""

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import CSV, assert_problem, create_series, readings


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sc_wrong"},
                                     {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_missing_or_wrong_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/series", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_another_tenants_series_is_404_and_untouched(client: TestClient, auth: dict[str, str],
                                                     other_auth: dict[str, str]) -> None:
    series = create_series(client, auth)
    client.post(f"/v1/series/{series['id']}/readings", headers={**auth, **CSV},
                content=b"ts,value\n2024-01-01 00:00,1\n")
    sid = series["id"]
    assert_problem(client.get(f"/v1/series/{sid}", headers=other_auth), 404)
    assert_problem(client.get(f"/v1/series/{sid}/readings", headers=other_auth), 404)
    assert_problem(client.post(f"/v1/series/{sid}/readings", headers={**other_auth, **CSV},
                               content=b"ts,value\n2024-01-01 00:30,2\n"), 404)
    assert_problem(client.delete(f"/v1/series/{sid}", headers=other_auth), 404)
    assert client.get("/v1/series", headers=other_auth).json() == {"data": [], "count": 0}
    assert len(readings(client, auth, sid)) == 1
    # The same name is free in another tenant.
    create_series(client, other_auth)
