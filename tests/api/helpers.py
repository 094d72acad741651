"""Small builders shared by the API tests."""

from typing import Any

from fastapi.testclient import TestClient

CSV = {"Content-Type": "text/csv"}


def create_series(client: TestClient, auth: dict[str, str], name: str = "building-7",
                  freq: str = "30min") -> dict[str, Any]:
    response = client.post("/v1/series", json={"name": name, "freq": freq}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def readings(client: TestClient, auth: dict[str, str], series_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/v1/series/{series_id}/readings", headers=auth)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The response is problem+json with this status, naming `field` if given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        assert any(e.get("field") == field for e in body.get("errors", [])), body
    return body


def count_rows(database_url: str, table: str) -> int:
    """Rows in a table, read straight from the database."""
    from sqlalchemy import text

    from app.db.engine import create_db_engine

    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        count = int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return count


def fill_series(client: Any, auth: dict[str, str], series_id: int, freq: str = "h",
                n: int = 300) -> None:
    """Upload `n` readings of a daily sine, enough for the default spec's parts (POST /v1/models
    refuses a series too short for them)."""
    import numpy as np
    import pandas as pd

    stamps = pd.date_range("2024-01-01", periods=n, freq=freq)
    values = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 24)
    body = "ts,value\n" + "".join(f"{t:%Y-%m-%d %H:%M},{v:.3f}\n"
                                  for t, v in zip(stamps, values, strict=True))
    response = client.post(f"/v1/series/{series_id}/readings", content=body.encode(),
                           headers={**auth, **CSV})
    assert response.status_code == 200, response.text
