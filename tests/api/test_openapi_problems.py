"""The OpenAPI document lists the problem+json answers each operation can give."""

from typing import Any

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

PROBLEM = "application/problem+json"


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    with TestClient(create_app(Settings(database_url="sqlite://"))) as client:
        schema = client.get("/openapi.json").json()
    return {(method, path): operation for path, ops in schema["paths"].items()
            for method, operation in ops.items()}


def test_every_v1_operation_documents_its_problems() -> None:
    ops = operations()
    v1 = {key: op for key, op in ops.items() if key[1].startswith("/v1/")}
    assert len(v1) > 20
    for (method, path), operation in v1.items():
        responses = operation["responses"]
        for status in ("401", "422", "503"):
            assert PROBLEM in responses[status]["content"], (method, path, status)
        assert "application/json" not in responses["422"]["content"], (method, path)
        assert "Retry-After" in responses["503"]["headers"]
        assert ("404" in responses) == ("{" in path), (method, path)
        assert ("413" in responses) == ("requestBody" in operation), (method, path)
        assert ("403" in responses) == (method != "get"), (method, path)  # a read key's limit
    upload = ops[("post", "/v1/series/{series_id}/readings")]["responses"]
    assert {"409", "413", "415"} <= set(upload)
    assert "409" in ops[("get", "/v1/series/{series_id}/forecast")]["responses"]
    assert "409" not in ops[("get", "/v1/series")]["responses"]
    assert "409" in ops[("delete", "/v1/keys/{key_id}")]["responses"]  # the last write key
    # Health and metrics are not behind a key.
    assert "401" not in ops[("get", "/healthz")]["responses"]


def test_a_422_is_sent_as_documented(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/series", json={"name": ""}, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
