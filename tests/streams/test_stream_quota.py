"""Every path that stores readings holds the tenant to STATECAST_TENANT_MAX_READINGS.

Stream posts once stored readings past the quota: a bulk post took a tenant from 4,227 to 4,588
readings with the limit at 4,500. The count is a counter on the tenant's row, so it must also
stay equal to the rows it counts, whatever was refused or rolled back on the way.
"""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.config import Settings
from app.db.engine import create_db_engine
from tests.api.helpers import CSV, assert_problem, count_rows
from tests.streams import test_bulk_readings
from tests.streams.test_bulk_readings import BULK, WARM, open_fleet, reading

fleet_artifacts = test_bulk_readings.fleet_artifacts  # the fleet's models, as a fixture here


def stored_count(settings: Settings) -> int:
    """The counter of tenant alice, read straight from the database."""
    engine = create_db_engine(settings.database_url)
    with engine.connect() as connection:
        value = connection.execute(text(
            "SELECT coalesce(sum(readings), 0) FROM tenant_readings JOIN tenants "
            "ON tenants.id = tenant_id WHERE name = 'alice'")).scalar_one()
    engine.dispose()
    return int(value)


def test_stream_posts_are_held_to_the_readings_quota(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts)
    assert stored_count(settings) == count_rows(settings.database_url, "readings") == 2 * WARM
    settings.tenant_max_readings = 2 * WARM + 4
    # The fast path: one reading right after each stream's last (m1 and m2 share a series).
    fast = [reading(s, WARM) for s in ("m1", "m2", "w1")]
    assert client.post(BULK, json={"readings": fast}, headers=auth).status_code == 200
    assert stored_count(settings) == 2 * WARM + 2
    # Three more readings for each series would pass the quota: refused whole, nothing stored.
    more = [reading(s, WARM + k) for k in (1, 2, 3) for s in ("m1", "w1")]
    response = client.post(BULK, json={"readings": more}, headers=auth)
    assert "STATECAST_TENANT_MAX_READINGS" in assert_problem(response, 429)["detail"]
    assert int(response.headers["Retry-After"]) > 0
    assert count_rows(settings.database_url, "readings") == stored_count(settings) == 2 * WARM + 2
    # One stream's post, through the general path: two fit, a third does not.
    two = [{"ts": reading("m1", WARM + k)["ts"], "value": reading("m1", WARM + k)["value"]}
           for k in (1, 2)]
    assert client.post("/v1/streams/m1/readings", json={"readings": two},
                       headers=auth).status_code == 200
    third = [{"ts": reading("w1", WARM + 1)["ts"], "value": 1.0}]
    assert_problem(client.post("/v1/streams/w1/readings", json={"readings": third},
                               headers=auth), 429)
    assert count_rows(settings.database_url, "readings") == stored_count(settings) == 2 * WARM + 4


def test_the_count_follows_refused_streams_uploads_and_deletes(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    ids = open_fleet(client, auth, settings, fleet_artifacts)
    # w1's reading comes after a gap too long to fill: refused after its readings were stored,
    # in a savepoint rolled back; m1's two readings are applied.
    mixed = [reading("m1", WARM), reading("m1", WARM + 1), reading("w1", WARM + 200)]
    body = client.post(BULK, json={"readings": mixed}, headers=auth).json()
    assert [s["status"] for s in body["streams"]] == ["applied", "refused"]
    assert stored_count(settings) == count_rows(settings.database_url, "readings") == 2 * WARM + 2
    # Re-sent readings are acknowledged, and counted once.
    assert client.post(BULK, json={"readings": mixed[:2]}, headers=auth).status_code == 200
    csv = b"ts,value\n2030-01-01 00:00,1\n2030-01-01 01:00,\n"
    sid = next(iter(ids.values()))
    assert client.post(f"/v1/series/{sid}/readings", content=csv,
                       headers={**auth, **CSV}).status_code == 200
    assert stored_count(settings) == count_rows(settings.database_url, "readings") == 2 * WARM + 4
    assert client.delete(f"/v1/series/{sid}", headers=auth).status_code == 204
    assert stored_count(settings) == count_rows(settings.database_url, "readings") == WARM


@pytest.mark.parametrize("limit", [5])
def test_an_upload_past_the_quota_changes_nothing(client: TestClient, auth: dict[str, str],
                                                  settings: Settings, limit: int) -> None:
    settings.tenant_max_readings = limit
    sid = client.post("/v1/series", json={"name": "q", "freq": "h"}, headers=auth).json()["id"]
    rows = "".join(f"2024-01-01 {h:02d}:00,1\n" for h in range(limit + 1))
    assert_problem(client.post(f"/v1/series/{sid}/readings", content=f"ts,value\n{rows}",
                               headers={**auth, **CSV}), 429)
    assert stored_count(settings) == count_rows(settings.database_url, "readings") == 0
