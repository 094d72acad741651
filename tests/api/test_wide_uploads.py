"""A wide or costly upload is parsed before any transaction opens, and bounded.

A 7.4 MB CSV with 750,000 columns held SQLite's write lock for 49 s (every tenant's writes got
503) and grew the process to 2.17 GB; on PostgreSQL it left a transaction idle for 50 s.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.config import Settings
from tests.api.helpers import CSV, assert_problem, create_series, readings


def columns_csv(columns: int, rows: int = 2) -> bytes:
    header = "ts,value" + "".join(f",c{i}" for i in range(columns - 2))
    lines = [f"2024-01-01 {h:02d}:00,{h}" + "," * (columns - 2) for h in range(rows)]
    return ("\n".join([header, *lines]) + "\n").encode()


def locking_statements(client: TestClient) -> list[str]:
    """Every statement from now on that takes a write lock (SQLite's BEGIN IMMEDIATE, a row
    lock on PostgreSQL)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "BEGIN IMMEDIATE" in statement or "FOR UPDATE" in statement:
            seen.append(statement)

    event.listen(client.app.state.engine, "before_cursor_execute", record)  # type: ignore[attr-defined]
    return seen


def test_a_csv_past_the_column_cap_is_422_naming_the_setting(client: TestClient,
                                                             auth: dict[str, str],
                                                             settings: Settings) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    cap = settings.max_csv_columns
    assert client.post(f"/v1/series/{sid}/readings", params={"value_col": "value"},
                       content=columns_csv(cap), headers={**auth, **CSV}).status_code == 200
    for columns in (cap + 1, 200_000):
        response = client.post(f"/v1/series/{sid}/readings", content=columns_csv(columns, 1),
                               headers={**auth, **CSV})
        problem = assert_problem(response, 422, "body")
        assert "STATECAST_MAX_CSV_COLUMNS" in problem["detail"]
    assert len(readings(client, auth, sid)) == 2


@pytest.mark.parametrize("body", [
    columns_csv(200_000, 1),
    b"ts,value\n2024-01-01 00:00,1\n2024-01-01 00:30,2\n",  # off the hourly grid
    b'{"readings": [{"ts": "2024-01-01T00:00:00Z", "value": "x"}]}',
], ids=["wide", "off-grid", "bad-json"])
def test_a_refused_upload_never_takes_a_write_lock(client: TestClient, auth: dict[str, str],
                                                   body: bytes) -> None:
    sid = create_series(client, auth, freq="h")["id"]
    seen = locking_statements(client)
    media = "application/json" if body.startswith(b"{") else "text/csv"
    response = client.post(f"/v1/series/{sid}/readings", content=body,
                           headers={**auth, "Content-Type": media})
    assert_problem(response, 422)
    assert seen == []
    ok = client.post(f"/v1/series/{sid}/readings", content=columns_csv(2),
                     headers={**auth, **CSV})
    assert ok.status_code == 200 and seen, "the lock is taken to store, once the body is valid"


def test_a_body_of_short_fields_counts_as_large_by_its_parse_cost(settings: Settings,
                                                                  auth: dict[str, str]) -> None:
    settings.max_large_uploads, settings.large_upload_bytes = 1, 1000
    body = columns_csv(60, rows=4)  # about 400 bytes, but 240 fields cost 1,920
    assert len(body) < settings.large_upload_bytes
    from app.main import create_app

    with TestClient(create_app(settings)) as client:
        sid = create_series(client, auth, freq="h")["id"]
        slots = client.app.state.large_uploads  # type: ignore[attr-defined]
        slots.acquire()  # another large upload is being parsed
        busy = client.post(f"/v1/series/{sid}/readings", content=body, headers={**auth, **CSV})
        small = client.post(f"/v1/series/{sid}/readings", content=columns_csv(2, rows=1),
                            headers={**auth, **CSV})
        slots.release()
        assert_problem(busy, 503)
        assert small.status_code == 200, small.text
        assert client.post(f"/v1/series/{sid}/readings", params={"value_col": "value"},
                           content=body, headers={**auth, **CSV}).status_code == 200
