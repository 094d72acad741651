"""`Prefer: return=minimal` on the stream posts: a 204 without a body, the state advanced exactly
as with the full answer.

Tenant `mallory` is fed with full answers, `alice` with minimal ones: the same readings leave the
same rows (state, counters, forecast, accuracy) and the same stored readings.
"""

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.streams import test_bulk_readings
from tests.streams.test_bulk_readings import (
    BULK,
    FLEET_MODELS,
    interleaved,
    open_fleet,
    per_stream,
    reading,
    snapshot,
    stored,
)

fleet_artifacts = test_bulk_readings.fleet_artifacts  # the fixture: the fleet's tiny models
MINIMAL = {"Prefer": "return=minimal"}
PLAN = {"m1": [0, 1, 2, 3], "w1": [0, 1, 2], "m2": [0, 2, 3]}  # m2: a gap of one step, filled


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """What two tenants' streams fed the same readings share (not their model ids or times)."""
    return {key: value for key, value in row.items() if key not in ("updated_at", "model_id")}


def assert_minimal(response: Any) -> None:
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["preference-applied"] == "return=minimal"


@pytest.mark.parametrize("prefer", ["return=minimal", 'respond-async, RETURN="minimal"; x=1'])
def test_single_posts_answer_204_and_step_as_a_full_answer_does(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path], prefer: str) -> None:
    alice = open_fleet(client, auth, settings, fleet_artifacts)
    mallory = open_fleet(client, other_auth, settings, fleet_artifacts)
    for stream, readings in per_stream(PLAN).items():
        for r in readings:  # one reading a post, as a meter sends them
            body = {"readings": [{"ts": r["ts"], "value": r["value"]}]}
            full = client.post(f"/v1/streams/{stream}/readings", json=body, headers=other_auth)
            assert full.status_code == 200, full.text
            assert "preference-applied" not in full.headers
            assert_minimal(client.post(f"/v1/streams/{stream}/readings", json=body,
                                       headers={**auth, "Prefer": prefer}))
        assert (comparable(snapshot(client, auth, stream))
                == comparable(snapshot(client, other_auth, stream))), stream
    for name in FLEET_MODELS:
        assert stored(client, auth, alice[name]) == stored(client, other_auth, mallory[name])


def test_a_minimal_post_through_fastapis_validation_answers_the_same(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path]) -> None:
    """A body the lean handler leaves to FastAPI (a charset in its type, a time with a space)
    is answered the same way."""
    open_fleet(client, auth, settings, fleet_artifacts)
    open_fleet(client, other_auth, settings, fleet_artifacts)
    r = reading("m1", 300)
    plain = client.post("/v1/streams/m1/readings", headers={**other_auth, **MINIMAL},
                        json={"readings": [{"ts": r["ts"], "value": r["value"]}]})
    assert_minimal(plain)
    unusual = client.post(
        "/v1/streams/m1/readings", headers={**auth, **MINIMAL,
                                            "Content-Type": "application/json; charset=utf-8"},
        content=f'{{"readings": [{{"ts": "{r["ts"].replace("T", " ")}", "value": {r["value"]}}}]}}')
    assert_minimal(unusual)
    assert (comparable(snapshot(client, auth, "m1"))
            == comparable(snapshot(client, other_auth, "m1")))


def test_bulk_answers_204_when_every_stream_is_applied(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path]) -> None:
    alice = open_fleet(client, auth, settings, fleet_artifacts)
    mallory = open_fleet(client, other_auth, settings, fleet_artifacts)
    readings = interleaved(per_stream(PLAN))
    full = client.post(BULK, json={"readings": readings}, headers=other_auth)
    assert full.status_code == 200 and full.json()["refused"] == 0, full.text
    assert_minimal(client.post(BULK, json={"readings": readings}, headers={**auth, **MINIMAL}))
    for stream in PLAN:
        assert (comparable(snapshot(client, auth, stream))
                == comparable(snapshot(client, other_auth, stream))), stream
    for name in FLEET_MODELS:
        assert stored(client, auth, alice[name]) == stored(client, other_auth, mallory[name])
    # Sent again: acknowledged as duplicates, still nothing to list.
    again = client.post(BULK, json={"readings": readings}, headers={**auth, **MINIMAL})
    assert_minimal(again)
    assert comparable(snapshot(client, auth, "m1")) == comparable(snapshot(client, other_auth,
                                                                           "m1"))


def test_bulk_with_a_refused_stream_answers_in_full_whatever_the_preference(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts)
    readings = [reading("m1", 300), {**reading("m1", 300), "stream_id": "nobody"}]
    response = client.post(BULK, json={"readings": readings}, headers={**auth, **MINIMAL})
    assert response.status_code == 200, response.text
    assert "preference-applied" not in response.headers
    body = response.json()
    assert (body["applied"], body["refused"]) == (1, 1)
    assert [s["status"] for s in body["streams"]] == ["applied", "refused"]


def test_a_refused_minimal_post_is_a_problem_as_ever(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts)
    r = reading("m1", 300)
    response = client.post("/v1/streams/nobody/readings", headers={**auth, **MINIMAL},
                           json={"readings": [{"ts": r["ts"], "value": r["value"]}]})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "preference-applied" not in response.headers
