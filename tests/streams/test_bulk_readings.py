"""POST /v1/streams/readings: many streams in one request, each all or nothing, exactly once.

A "fleet" is two series of one tenant, each with a model and two streams: `load` with the
stateful LSTM (streams m1, m2) and `load-b` with the window GRU (streams w1, w2). Tenant `mallory`
gets the same fleet, under the same names, as the reference fed one stream at a time through
POST /v1/streams/{id}/readings; tenant `alice` is fed through the bulk endpoint.
"""

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import stream_rows
from app.main import create_app
from app.ml.artifacts import META_FILE, load_meta
from app.ml.forecaster import Forecaster
from tests.api.helpers import assert_problem, count_rows
from tests.streams.conftest import SERIES_NAME, hourly_values, install_model, upload

BULK = "/v1/streams/readings"
MAX_BULK_READINGS = 50_000
WARM = 300  # 2024-01-13 12:00: every reading below stays within that day (one seasonal fit)
SECOND_SERIES = "load-b"
FLEET_MODELS = {SERIES_NAME: "lstm_stateful", SECOND_SERIES: "gru_window"}
FLEET_SEEDS = {SERIES_NAME: 0, SECOND_SERIES: 1}
FLEET_STREAMS = {"m1": SERIES_NAME, "m2": SERIES_NAME, "w1": SECOND_SERIES, "w2": SECOND_SERIES}
RACE_THREADS = 4
RACE_ROUNDS = 6
REQUEST_TIMEOUT_S = 120.0

Reading = dict[str, Any]


@pytest.fixture(scope="session")
def fleet_artifacts(artifacts: dict[str, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny trained models, one per fleet series: a model knows its series by name, so the
    second series gets a copy of the window GRU whose metadata says `load-b`."""
    root = tmp_path_factory.mktemp("fleet")
    renamed = root / SECOND_SERIES
    shutil.copytree(artifacts[FLEET_MODELS[SECOND_SERIES]], renamed)
    meta = load_meta(renamed)
    for key in ("scales", "mase_scales", "data_range"):
        if SERIES_NAME in (meta.get(key) or {}):
            meta[key][SECOND_SERIES] = meta[key].pop(SERIES_NAME)
    (renamed / META_FILE).write_text(json.dumps(meta))
    return {SERIES_NAME: artifacts[FLEET_MODELS[SERIES_NAME]], SECOND_SERIES: renamed}


def series_values(name: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    return hourly_values(seed=FLEET_SEEDS[name])


def iso(stamp: pd.Timestamp) -> str:
    return f"{stamp:%Y-%m-%dT%H:%M:%SZ}"


def open_fleet(client: TestClient, auth: dict[str, str], settings: Settings,
               fleet_artifacts: dict[str, Path], streams: dict[str, str] = FLEET_STREAMS,
               ) -> dict[str, int]:
    """The two series with WARM readings and a model each, and `streams` on them; series ids."""
    ids = {}
    for name, artifact in fleet_artifacts.items():
        response = client.post("/v1/series", json={"name": name, "freq": "h"}, headers=auth)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
        stamps, values = series_values(name)
        upload(client, auth, ids[name], stamps[:WARM], values[:WARM])
        install_model(settings, artifact, ids[name])
    for stream, name in streams.items():
        created = client.post("/v1/streams", json={"series_id": ids[name], "stream_id": stream},
                              headers=auth)
        assert created.status_code == 201, created.text
    return ids


def reading(stream: str, i: int, *, missing: bool = False) -> Reading:
    """The reading of `stream` at step `i` of its series (its value, or null if `missing`)."""
    stamps, values = series_values(FLEET_STREAMS.get(stream, SERIES_NAME))
    return {"stream_id": stream, "ts": iso(stamps[i]),
            "value": None if missing else float(values[i])}


def per_stream(plan: dict[str, list[int | tuple[int, None]]]) -> dict[str, list[Reading]]:
    """Readings by stream from steps after WARM; `(k, None)` is a missing (null) reading."""
    return {stream: [reading(stream, WARM + s[0], missing=True) if isinstance(s, tuple)
                     else reading(stream, WARM + s) for s in steps]
            for stream, steps in plan.items()}


def interleaved(readings: dict[str, list[Reading]]) -> list[Reading]:
    """One reading of each stream in turn: the request mixes the streams."""
    out: list[Reading] = []
    longest = max(len(r) for r in readings.values())
    for k in range(longest):
        out += [rs[k] for rs in readings.values() if k < len(rs)]
    return out


def bulk(client: TestClient, auth: dict[str, str], readings: list[Reading],
         query: str = "") -> dict[str, Any]:
    response = client.post(BULK + query, json={"readings": readings}, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def single(client: TestClient, auth: dict[str, str], stream: str,
           readings: list[Reading]) -> dict[str, Any]:
    response = client.post(f"/v1/streams/{stream}/readings", headers=auth, json={
        "readings": [{"ts": r["ts"], "value": r["value"]} for r in readings]})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def snapshot(client: TestClient, auth: dict[str, str], stream: str) -> dict[str, Any]:
    """What a stream row holds, as the API shows it: state, counters, last reading, forecast."""
    detail = client.get(f"/v1/streams/{stream}", headers=auth)
    assert detail.status_code == 200, detail.text
    state = client.get(f"/v1/streams/{stream}/state", headers=auth).json()
    body = detail.json()
    return {"state": state["state"], "model_id": state["model_id"],
            "readings_applied": body["readings_applied"], "last_ts": body["last_ts"],
            "next_forecast": body["next_forecast"], "accuracy": body["accuracy"],
            "updated_at": body["updated_at"]}


def stored(client: TestClient, auth: dict[str, str], series_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/v1/series/{series_id}/readings", headers=auth)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["stream_id"]: entry for entry in body["streams"]}


def same_time(a: str | None, b: str | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None
                                         and pd.Timestamp(a) == pd.Timestamp(b))


def assert_close(got: Any, expected: Any, rtol: float = 1e-9) -> None:
    """Equal structures whose floats agree to `rtol` (a state reached over other request
    boundaries may differ in the last bits, never more)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (got, expected)
        for key in expected:
            assert_close(got[key], expected[key], rtol)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), (got, expected)
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, rtol)
    elif isinstance(expected, float) and not isinstance(got, bool):
        assert got == pytest.approx(expected, rel=rtol, abs=1e-12), (got, expected)
    else:
        assert got == expected


def forecaster_state(artifact: Path, series: str, steps: list[int]) -> dict[str, Any]:
    """The state the forecaster itself reaches, warmed over the series' first WARM readings and
    then fed those at `steps` one at a time: the ground truth, without the API."""
    forecaster = Forecaster.load(artifact)
    stamps, values = series_values(series)
    seasonal = forecaster.history_seasonal(values, stamps) if forecaster.needs_seasonal else None
    state = forecaster.warm(values[:WARM], stamps[:WARM], forecaster.initial_state(series),
                            seasonal=seasonal)
    for i in steps:
        state = forecaster.warm(values[i:i + 1], stamps[i:i + 1], state, seasonal=seasonal)
    return state


# --- the same as one stream at a time --------------------------------------------------------

def test_bulk_ends_where_one_stream_at_a_time_ends(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path]) -> None:
    """Four streams on two series (stateful LSTM, window GRU), with gaps and missing readings,
    mixed in one request: each ends with the state, forecast and counters that posting its own
    readings to its own endpoint gives."""
    alice = open_fleet(client, auth, settings, fleet_artifacts)
    mallory = open_fleet(client, other_auth, settings, fleet_artifacts)
    # First appearance: w2, m1, w1, m2. Streams of one series agree on the values they share.
    plan = per_stream({
        "w2": [0, 1, 2, (8, None), 9],                # a 5-step gap, then a missing reading
        "m1": [0, 1, 2, 3, 4, 5, 6, 7],
        "w1": [0, 1, 2, 3, 4, 5],
        "m2": [0, 1, 4, 5, (9, None), 10],            # gaps of 2 and 3 steps, filled
    })
    expected = {stream: single(client, other_auth, stream, readings)
                for stream, readings in plan.items()}
    reference = {stream: snapshot(client, other_auth, stream) for stream in plan}

    body = bulk(client, auth, interleaved(plan))

    total = sum(len(r) for r in plan.values())
    assert (body["applied"], body["duplicates"], body["refused"]) == (total, 0, 0)
    assert [entry["stream_id"] for entry in body["streams"]] == ["w2", "m1", "w1", "m2"]
    for stream, entry in by_id(body).items():
        one = expected[stream]
        assert entry["status"] == "applied" and entry["error"] is None, entry
        assert entry["applied"] == len(one["applied"]) == len(plan[stream])
        assert entry["duplicates"] == 0
        assert entry["filled"] == len(one["filled"])
        assert same_time(entry["last_ts"], one["last_ts"])
        assert entry["next_forecast"] == reference[stream]["next_forecast"], stream
        got = snapshot(client, auth, stream)
        assert got["state"] == reference[stream]["state"], stream
        for key in ("readings_applied", "next_forecast", "accuracy"):
            assert got[key] == reference[stream][key], (stream, key)
        assert same_time(got["last_ts"], reference[stream]["last_ts"])
    assert sum(e["filled"] for e in body["streams"]) == 10  # w2: 5, m2: 2 + 3
    # Both paths may share code: m1's state is also checked against the forecaster alone.
    truth = forecaster_state(fleet_artifacts[SERIES_NAME], SERIES_NAME,
                             list(range(WARM, WARM + 8)))
    assert_close(snapshot(client, auth, "m1")["state"], truth)
    for name in FLEET_MODELS:
        assert stored(client, auth, alice[name]) == stored(client, other_auth, mallory[name])
    # Feeding alice's streams of the same names left mallory's alone.
    assert {s: snapshot(client, other_auth, s) for s in plan} == reference



# Two more streams of the stateful LSTM's series: six streams, four on the one-reading path.
SIX_STREAMS = {**FLEET_STREAMS, "m3": SERIES_NAME, "m4": SERIES_NAME}


def test_a_bulk_post_over_several_statements_ends_where_one_stream_at_a_time_ends(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Statements of at most 4 rows on SQLite (several a post, a short one padded by repeating
    a row), and arrays or copied tables from 2 rows on PostgreSQL: bulk posts of one reading a
    stream end where one post per stream and reading ends."""
    alice = open_fleet(client, auth, settings, fleet_artifacts, SIX_STREAMS)
    mallory = open_fleet(client, other_auth, settings, fleet_artifacts, SIX_STREAMS)
    steps = range(3)
    for k in steps:
        for stream in SIX_STREAMS:
            single(client, other_auth, stream, [reading(stream, WARM + k)])
    reference = {stream: snapshot(client, other_auth, stream) for stream in SIX_STREAMS}
    monkeypatch.setattr(stream_rows, "SQLITE_CHUNK_ROWS", 4)
    monkeypatch.setattr(stream_rows, "SQLITE_EXACT_ROWS", 1)
    monkeypatch.setattr(stream_rows, "PG_ARRAY_MIN_ROWS", 1)
    for k in steps:
        body = bulk(client, auth, [reading(stream, WARM + k) for stream in SIX_STREAMS])
        assert (body["applied"], body["duplicates"], body["refused"]) == (6, 0, 0), body
    for stream in SIX_STREAMS:
        got = snapshot(client, auth, stream)
        for key in ("state", "readings_applied", "next_forecast", "accuracy"):
            assert got[key] == reference[stream][key], (stream, key)
    for name in FLEET_MODELS:
        assert stored(client, auth, alice[name]) == stored(client, other_auth, mallory[name])

# --- refusals ---------------------------------------------------------------------------------

def test_a_refused_stream_changes_nothing_and_stops_no_other(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    refusing = {"c": SERIES_NAME, "t": SERIES_NAME, "g": SECOND_SERIES, "far": SECOND_SERIES}
    ids = open_fleet(client, auth, settings, fleet_artifacts,
                     {"m1": SERIES_NAME, "w1": SECOND_SERIES, **refusing})
    stamps_a, values_a = series_values(SERIES_NAME)
    stamps_b, _ = series_values(SECOND_SERIES)
    far = WARM + settings.stream_max_gap + 10
    off_grid = stamps_b[WARM + 6] + pd.Timedelta(minutes=30)
    readings = [
        reading("m1", WARM), reading("m1", WARM + 1),
        {"stream_id": "ghost", "ts": iso(stamps_a[WARM]), "value": 1.0},
        # A stored reading sent with another value, then a new one that must not be stored.
        {"stream_id": "c", "ts": iso(stamps_a[WARM - 1]), "value": float(values_a[WARM - 1]) + 1},
        {**reading("c", WARM + 6), "stream_id": "c"},
        reading("w1", WARM), reading("w1", WARM + 1),
        {**reading("w1", WARM + 6), "stream_id": "g"},
        {"stream_id": "g", "ts": iso(off_grid), "value": 1.0},
        {**reading("m1", WARM + 8), "stream_id": "t"}, {**reading("m1", WARM + 8), "stream_id": "t"},
        {**reading("w1", far), "stream_id": "far"},
        reading("m1", WARM + 2), reading("w1", WARM + 2),
    ]
    before = {s: snapshot(client, auth, s) for s in refusing}
    rows_before = count_rows(settings.database_url, "readings")

    body = bulk(client, auth, readings)

    assert (body["applied"], body["duplicates"], body["refused"]) == (6, 0, 8)
    assert [e["stream_id"] for e in body["streams"]] == ["m1", "ghost", "c", "w1", "g", "t", "far"]
    entries = by_id(body)
    for stream in ("m1", "w1"):
        assert entries[stream]["status"] == "applied" and entries[stream]["error"] is None
        assert entries[stream]["applied"] == 3 and entries[stream]["next_forecast"] is not None
        assert snapshot(client, auth, stream)["readings_applied"] == 3
    statuses = {"ghost": 404, "c": 409, "g": 422, "t": 422, "far": 422}
    for stream, status in statuses.items():
        entry = entries[stream]
        assert entry["status"] == "refused" and entry["applied"] == 0, entry
        error = entry["error"]
        assert error["status"] == status and error["title"] and error["detail"], entry
    assert "ghost" in entries["ghost"]["error"]["detail"]
    for stream in ("g", "t", "far"):  # the reading at fault is named
        fields = [e.get("field", "") for e in entries[stream]["error"].get("errors") or []]
        assert any("ts" in field for field in fields), entries[stream]
    assert "rewarm" in entries["far"]["error"]["detail"]
    # The refused streams' rows are as they were, and none of their readings was stored.
    assert {s: snapshot(client, auth, s) for s in refusing} == before
    assert count_rows(settings.database_url, "readings") == rows_before + 6
    stored_a = {r["ts"] for r in stored(client, auth, ids[SERIES_NAME])}
    stored_b = {r["ts"] for r in stored(client, auth, ids[SECOND_SERIES])}
    assert iso(stamps_a[WARM + 6]) not in stored_a and iso(stamps_a[WARM + 8]) not in stored_a
    assert iso(stamps_b[WARM + 6]) not in stored_b and iso(stamps_b[far]) not in stored_b
    assert {r["value"] for r in stored(client, auth, ids[SERIES_NAME])
            if r["ts"] == iso(stamps_a[WARM - 1])} == {float(values_a[WARM - 1])}

    # rewarm=true restarts the far stream from the stored history instead of refusing it.
    again = bulk(client, auth, [{**reading("w1", far), "stream_id": "far"}], "?rewarm=true")
    assert again["applied"] == 1 and again["refused"] == 0
    assert by_id(again)["far"]["status"] == "applied"
    assert same_time(snapshot(client, auth, "far")["last_ts"], iso(stamps_b[far]))


def test_another_tenants_stream_looks_missing_and_stays_as_it_was(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts, {"m1": SERIES_NAME})
    theirs = open_fleet(client, other_auth, settings, fleet_artifacts, {"theirs": SERIES_NAME})
    before = snapshot(client, other_auth, "theirs")
    their_readings = stored(client, other_auth, theirs[SERIES_NAME])

    body = bulk(client, auth, [
        {**reading("m1", WARM), "stream_id": "theirs"}, reading("m1", WARM),
        {**reading("m1", WARM), "stream_id": "ghost"}])

    assert (body["applied"], body["refused"]) == (1, 2)
    entries = by_id(body)
    assert entries["m1"]["status"] == "applied"
    assert entries["theirs"]["status"] == entries["ghost"]["status"] == "refused"
    theirs_error = json.dumps(entries["theirs"]["error"]).replace("theirs", "ID")
    ghost_error = json.dumps(entries["ghost"]["error"]).replace("ghost", "ID")
    assert theirs_error == ghost_error and entries["theirs"]["error"]["status"] == 404
    rest = [{k: v for k, v in entries[s].items() if k not in ("stream_id", "error")}
            for s in ("theirs", "ghost")]
    assert rest[0] == rest[1]
    assert snapshot(client, other_auth, "theirs") == before
    assert stored(client, other_auth, theirs[SERIES_NAME]) == their_readings


def test_a_resent_request_is_acknowledged_never_applied_twice(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts)
    plan = per_stream({"m1": [0, 1, 2], "w1": [0, 1], "m2": [0, 1, 2], "w2": [0, 1, (3, None)]})
    readings = interleaved(plan)
    first = bulk(client, auth, readings)
    assert (first["applied"], first["duplicates"]) == (11, 0)
    after = {s: snapshot(client, auth, s) for s in plan}
    rows = count_rows(settings.database_url, "readings")

    again = bulk(client, auth, readings)

    assert (again["applied"], again["duplicates"], again["refused"]) == (0, 11, 0)
    for stream, entry in by_id(again).items():
        assert entry["status"] == "applied" and entry["error"] is None
        assert (entry["applied"], entry["duplicates"], entry["filled"]) == \
            (0, len(plan[stream]), 0)
        assert same_time(entry["last_ts"], after[stream]["last_ts"])
    assert {s: snapshot(client, auth, s) for s in plan} == after
    assert count_rows(settings.database_url, "readings") == rows

    # Re-sent readings with a new one each: only the new ones move the streams.
    grown = per_stream({"m1": [0, 1, 2, 3], "w1": [0, 1, 2], "m2": [0, 1, 2, 3],
                        "w2": [0, 1, (3, None), 4]})
    more = bulk(client, auth, interleaved(grown))
    assert (more["applied"], more["duplicates"], more["refused"]) == (4, 11, 0)
    for stream in plan:
        assert snapshot(client, auth, stream)["readings_applied"] == len(grown[stream])
    assert count_rows(settings.database_url, "readings") == rows + 3  # steps 3 (load); 2, 4 (load-b)


def test_a_malformed_body_is_refused_whole_and_changes_nothing(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts, {"m1": SERIES_NAME})
    good = reading("m1", WARM)
    next_ts = reading("m1", WARM + 1)["ts"]
    too_many = [{"stream_id": "m1", "ts": iso(t), "value": 1.0}
                for t in pd.date_range("2030-01-01", periods=MAX_BULK_READINGS + 1, freq="h")]
    cases: list[tuple[str, Any, str]] = [
        ("no readings field", {}, "readings"),
        ("an empty list", {"readings": []}, "readings"),
        ("no stream id", {"readings": [good, {"ts": next_ts, "value": 1.0}]},
         "readings.1.stream_id"),
        ("no timestamp", {"readings": [good, {"stream_id": "m1", "value": 1.0}]},
         "readings.1.ts"),
        ("a bad timestamp", {"readings": [good, {"stream_id": "m1", "ts": "yesterday",
                                                 "value": 1.0}]}, "readings.1.ts"),
        ("a value that is no number", {"readings": [good, {"stream_id": "m1", "ts": next_ts,
                                                           "value": "abc"}]}, "readings.1.value"),
        ("over 50,000 readings", {"readings": [good, *too_many[1:]]}, "readings"),
        ("readings not a list", {"readings": good}, "readings"),
        ("a year no reading can have", {"readings": [good, {"stream_id": "m1",
                                                            "ts": "9999-01-01T00:00:00Z",
                                                            "value": 1.0}]}, "readings[1].ts"),
    ]
    before = snapshot(client, auth, "m1")
    rows = count_rows(settings.database_url, "readings")
    for name, body, field in cases:
        response = client.post(BULK, json=body, headers=auth)
        try:
            assert_problem(response, 422, field)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
        assert snapshot(client, auth, "m1") == before, name
        assert count_rows(settings.database_url, "readings") == rows, name

    # The limit itself is allowed: 50,000 readings, here all for a stream that does not exist.
    ghost = [{**r, "stream_id": "ghost"} for r in too_many[:MAX_BULK_READINGS]]
    body = bulk(client, auth, ghost)
    assert (body["applied"], body["refused"]) == (0, MAX_BULK_READINGS)
    assert [e["stream_id"] for e in body["streams"]] == ["ghost"]


def test_without_a_key_nothing_is_read_or_written(client: TestClient, auth: dict[str, str],
                                                   settings: Settings,
                                                   fleet_artifacts: dict[str, Path]) -> None:
    open_fleet(client, auth, settings, fleet_artifacts, {"m1": SERIES_NAME})
    rows = count_rows(settings.database_url, "readings")
    assert_problem(client.post(BULK, json={"readings": [reading("m1", WARM)]}), 401)
    assert_problem(client.post(BULK, json={"readings": [reading("m1", WARM)]},
                               headers={"Authorization": "Bearer sc_wrong"}), 401)
    assert count_rows(settings.database_url, "readings") == rows


# --- concurrency ------------------------------------------------------------------------------

def race(clients: list[TestClient], auth: dict[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """RACE_THREADS threads, each posting RACE_ROUNDS growing prefixes of every fleet stream's
    readings, each thread in its own stream order, all starting each round together.

    Every request holds whole prefixes, so whichever wins, no stream ever sees a gap: each
    reading is applied by exactly one request and acknowledged by the others.
    """
    streams = list(FLEET_STREAMS)
    gate = threading.Barrier(RACE_THREADS, timeout=REQUEST_TIMEOUT_S)
    answers: list[tuple[int, dict[str, Any]]] = []
    failures: list[BaseException] = []

    def poster(k: int) -> None:
        order = streams[k:] + streams[:k]
        order = order[::-1] if k % 2 else order
        http = clients[k % len(clients)]
        try:
            for r in range(RACE_ROUNDS):
                readings = [reading(s, WARM + i) for s in order for i in range(r + 1)]
                gate.wait()
                response = http.post(BULK, json={"readings": readings}, headers=auth)
                answers.append((response.status_code, response.json()))
        except BaseException as exc:  # reported below; a hung barrier must not hang the test
            failures.append(exc)
            gate.abort()

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(RACE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RACE_ROUNDS * REQUEST_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a poster hung: deadlock?"
    assert not failures, failures
    return answers


def assert_exactly_once(client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
                        settings: Settings, answers: list[tuple[int, dict[str, Any]]],
                        alice: dict[str, int]) -> None:
    """Every answer 200 with nothing refused; each reading applied once, by one request; each
    stream where the same readings sent once, one at a time, leave the reference tenant's."""
    assert len(answers) == RACE_THREADS * RACE_ROUNDS
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    assert all(body["refused"] == 0 for _, body in answers), answers
    sent = RACE_THREADS * sum(r + 1 for r in range(RACE_ROUNDS))
    for stream in FLEET_STREAMS:
        entries = [by_id(body)[stream] for _, body in answers]
        assert sum(e["applied"] for e in entries) == RACE_ROUNDS, stream
        assert sum(e["applied"] + e["duplicates"] for e in entries) == sent, stream
    for stream in FLEET_STREAMS:
        for i in range(RACE_ROUNDS):
            single(client, other_auth, stream, [reading(stream, WARM + i)])
        got, expected = snapshot(client, auth, stream), snapshot(client, other_auth, stream)
        assert got["readings_applied"] == expected["readings_applied"] == RACE_ROUNDS
        assert same_time(got["last_ts"], expected["last_ts"])
        assert_close(got["state"], expected["state"])
        assert_close(got["next_forecast"], expected["next_forecast"])
        assert_close(got["accuracy"], expected["accuracy"])
    assert count_rows(settings.database_url, "readings") == 2 * 2 * (WARM + RACE_ROUNDS)
    for name, series_id in alice.items():
        stamps, values = series_values(name)
        got_rows = stored(client, auth, series_id)
        assert [r["ts"] for r in got_rows] == [iso(t) for t in stamps[:WARM + RACE_ROUNDS]]
        np.testing.assert_array_equal([r["value"] for r in got_rows], values[:WARM + RACE_ROUNDS])


def test_concurrent_overlapping_requests_apply_each_reading_once(
        client: TestClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings, fleet_artifacts: dict[str, Path]) -> None:
    """Threads posting the same readings in different stream orders: no deadlock, no 5xx."""
    alice = open_fleet(client, auth, settings, fleet_artifacts)
    open_fleet(client, other_auth, settings, fleet_artifacts)
    answers = race([client], auth)
    assert_exactly_once(client, auth, other_auth, settings, answers, alice)


@pytest.fixture
def second_replica(settings: Settings) -> Iterator[TestClient]:
    """Another API instance on the same database: its own engine, pool and model cache."""
    with TestClient(create_app(settings)) as replica:
        yield replica


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # replicas share PostgreSQL
def test_two_replicas_racing_over_the_same_streams_apply_each_reading_once(
        client: TestClient, second_replica: TestClient, auth: dict[str, str],
        other_auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    alice = open_fleet(client, auth, settings, fleet_artifacts)
    open_fleet(client, other_auth, settings, fleet_artifacts)
    answers = race([client, second_replica], auth)
    assert_exactly_once(client, auth, other_auth, settings, answers, alice)


def test_a_state_the_model_cannot_read_refuses_its_stream_only(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    """A stream row whose state no longer fits its network (edited by hand, say) is refused
    with a 409 that says so, alone, on both endpoints; never a 500."""
    from sqlalchemy import text

    from app.db.engine import create_db_engine

    open_fleet(client, auth, settings, fleet_artifacts, {"m1": SERIES_NAME, "m2": SERIES_NAME})
    broken = snapshot(client, auth, "m2")["state"]
    broken["network"] = [[[0.0, 1.0]] for _ in broken["network"]]  # too narrow for any layer
    engine = create_db_engine(settings.database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE streams SET state = :state WHERE name = 'm2'"),
                           {"state": json.dumps(broken)})
    engine.dispose()

    body = bulk(client, auth, [reading("m1", WARM), reading("m2", WARM)])
    entries = by_id(body)
    assert entries["m1"]["status"] == "applied"
    assert entries["m2"]["status"] == "refused" and entries["m2"]["error"]["status"] == 409
    alone = client.post("/v1/streams/m2/readings", json={"readings": [
        {k: v for k, v in reading("m2", WARM).items() if k != "stream_id"}]}, headers=auth)
    assert_problem(alone, 409)


def test_a_stream_locked_too_long_is_503_and_nothing_is_applied(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    """The fast path's statements run on the driver's cursor: a lock wait that times out there
    is still the API's 503 with Retry-After, never a 500, and the post can be sent again."""
    import sqlite3

    from sqlalchemy import text

    from app.db.engine import create_db_engine

    open_fleet(client, auth, settings, fleet_artifacts, {"m1": SERIES_NAME})
    before = snapshot(client, auth, "m1")
    settings.database_lock_timeout_s = 0.2
    engine = create_db_engine(settings.database_url)
    with TestClient(create_app(settings)) as impatient, engine.connect() as holder:
        if engine.dialect.name == "sqlite":
            other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"),
                                    isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
        else:  # the stream's row only: the post gets as far as its locking read
            holder.execute(text("SELECT id FROM streams WHERE name = 'm1' FOR UPDATE"))
        for path, body in ((BULK, {"readings": [reading("m1", WARM)]}),
                           ("/v1/streams/m1/readings", {"readings": [
                               {k: v for k, v in reading("m1", WARM).items()
                                if k != "stream_id"}]})):
            response = impatient.post(path, json=body, headers=auth)
            assert_problem(response, 503)
            assert int(response.headers["Retry-After"]) > 0
        if engine.dialect.name == "sqlite":
            other.execute("ROLLBACK")
            other.close()
        holder.rollback()
    engine.dispose()
    assert snapshot(client, auth, "m1") == before
    assert bulk(client, auth, [reading("m1", WARM)])["applied"] == 1


def test_rows_holding_the_old_json_state_step_on_exactly_as_binary_ones(
        client: TestClient, auth: dict[str, str], settings: Settings,
        fleet_artifacts: dict[str, Path]) -> None:
    """A stream row written before states were stored in binary holds the JSON form: it still
    loads, on the fast path (one reading) and the general one (two readings, a missing one),
    and ends exactly where a stream stored in binary ends; its row is binary from then on."""
    from sqlalchemy import text

    from app.db.engine import create_db_engine
    from app.ml.stream_state import FORMAT_VERSION

    streams = {name: SERIES_NAME for name in ("new1", "new2", "old1", "old2")}
    open_fleet(client, auth, settings, fleet_artifacts, streams)
    engine = create_db_engine(settings.database_url)
    with engine.begin() as connection:
        for name in ("old1", "old2"):
            connection.execute(text("UPDATE streams SET state = :state WHERE name = :name"),
                               {"state": json.dumps(snapshot(client, auth, name)["state"]),
                                "name": name})
    bulk(client, auth, [reading("new1", WARM), reading("old1", WARM)])
    for name in ("new2", "old2"):
        single(client, auth, name, [reading(name, WARM), reading(name, WARM + 1, missing=True)])
    for new, old in (("new1", "old1"), ("new2", "old2")):
        got, want = snapshot(client, auth, old), snapshot(client, auth, new)
        assert {k: v for k, v in got.items() if k != "updated_at"} == {
            k: v for k, v in want.items() if k != "updated_at"}, old
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT state FROM streams")).scalars().all()
    engine.dispose()
    assert {bytes(state)[0] for state in stored} == {FORMAT_VERSION}
