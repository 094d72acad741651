"""Server-Sent Events of jobs and streams, read over a real socket while the rows change.

The app runs under uvicorn in a thread, so responses stream as they would in production and a
client can really hang up. Every read has a timeout, so a missing event fails the test instead
of hanging it.
"""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, select

from app.api.routes import events
from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.tables import Job, Reading, Series, Stream, utcnow
from app.main import create_app
from tests.api.helpers import assert_problem, create_series, fill_series
from tests.server import free_port
from tests.streams.conftest import artifacts, hourly_values, install_model, load_series

__all__ = ["artifacts"]  # a session fixture: trained once, shared with tests/streams

READ_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]


@pytest.fixture
def url(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app served by uvicorn in a thread, its event streams polling fast."""
    monkeypatch.setattr(events, "EVENTS_POLL_INTERVAL_S", POLL_INTERVAL_S)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                           port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline_s = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started and time.monotonic() < deadline_s:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SHUTDOWN_TIMEOUT_S)


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=READ_TIMEOUT_S) as client:
        yield client


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """Direct access to the database, standing in for a worker or another replica."""
    db_engine = create_db_engine(settings.database_url)
    yield db_engine
    db_engine.dispose()


def write(engine: Engine, row_type: type, key: Any, **columns: Any) -> None:
    with transaction(create_session_factory(engine), write=True) as session:
        row = session.get(row_type, key)
        assert row is not None
        for name, value in columns.items():
            setattr(row, name, value)


def lines_to_events(response: httpx.Response) -> Iterator[Event | str]:
    """Events as they arrive, and comments (heartbeats) as strings."""
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield line
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        elif line == "" and data:
            yield Event(name, json.loads("\n".join(data)))
            name, data = "message", []


def next_event(stream: Iterator[Event | str]) -> Event:
    """The next event, skipping heartbeats; each read is bounded by the client's timeout."""
    for item in stream:
        if isinstance(item, Event):
            return item
    raise AssertionError("the event stream closed")


def queued_job(http: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    """A job that stays queued: no worker runs beside this app, the test plays the worker."""
    series = create_series(http, auth)  # type: ignore[arg-type]
    fill_series(http, auth, series["id"], freq="30min")
    accepted = http.post("/v1/models", headers=auth,
                         json={"series_ids": [series["id"]], "spec": {"units": 4}})
    assert accepted.status_code == 202, accepted.text
    job: dict[str, Any] = accepted.json()["job"]
    return job


def progress(epoch: int, epochs: int = 3) -> dict[str, Any]:
    return {"phase": "training", "epoch": epoch, "epochs": epochs, "loss": 1.0 / epoch,
            "val_loss": 1.5 / epoch, "elapsed_s": 0.5 * epoch, "eta_s": 0.5 * (epochs - epoch),
            "history": [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.5 / e}
                        for e in range(1, epoch + 1)]}


# ---- jobs ---------------------------------------------------------------------------------

def test_job_events_follow_the_row_until_done(http: httpx.Client, auth: dict[str, str],
                                              engine: Engine) -> None:
    job = queued_job(http, auth)
    with http.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        stream = lines_to_events(response)
        first = next_event(stream)
        assert (first.name, first.data["id"], first.data["status"]) == ("progress", job["id"],
                                                                         "queued")
        write(engine, Job, job["id"], status="running", started_at=utcnow(), attempts=1)
        running = next_event(stream)
        assert (running.name, running.data["status"], running.data["progress"]) == (
            "progress", "running", None)
        for epoch in (1, 2, 3):
            write(engine, Job, job["id"], progress=progress(epoch))
            event = next_event(stream)
            assert event.name == "progress"
            assert event.data["progress"] == progress(epoch)
        write(engine, Job, job["id"], status="succeeded", finished_at=utcnow())
        done = next_event(stream)
        assert (done.name, done.data["status"]) == ("done", "succeeded")
        assert done.data["progress"] == progress(3) and done.data["finished_at"]
        assert list(stream) == []  # the server closed the stream after `done`


def test_a_finished_job_sends_done_at_once(http: httpx.Client, auth: dict[str, str],
                                           engine: Engine) -> None:
    job = queued_job(http, auth)
    write(engine, Job, job["id"], status="failed", error="out of memory", finished_at=utcnow())
    with http.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth) as response:
        items = list(lines_to_events(response))
    assert items == [Event("done", items[0].data)]  # type: ignore[union-attr]
    assert items[0].data["error"] == "out of memory"  # type: ignore[union-attr]


def test_heartbeats_while_nothing_changes(http: httpx.Client, auth: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "HEARTBEAT_INTERVAL_S", 0.1)
    job = queued_job(http, auth)
    with http.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth) as response:
        stream = lines_to_events(response)
        assert next_event(stream).name == "progress"
        assert next(stream) == ": keep-alive"
        assert next(stream) == ": keep-alive"


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls of a polling read of the events module; the list holds the count."""
    calls = [0]
    read = getattr(events, name)

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return read(*args)

    monkeypatch.setattr(events, name, counted)
    return calls


def polls_stop(calls: list[int]) -> bool:
    """Whether polling stops soon after the client hung up."""
    deadline_s = time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < deadline_s:
        before = calls[0]
        time.sleep(10 * POLL_INTERVAL_S)
        if calls[0] == before:
            return True
    return False


def test_hanging_up_stops_the_polling(http: httpx.Client, auth: dict[str, str],
                                      engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    job_reads = count_calls(monkeypatch, "_read_job")
    stream_reads = count_calls(monkeypatch, "_read_mark")
    job = queued_job(http, auth)
    series = create_series(http, auth, "other")  # type: ignore[arg-type]
    bare_stream(engine, series["id"], "meter-1")
    with http.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth) as response:
        # Keep the reader: dropping it mid-stream closes the connection (httpcore does).
        stream = lines_to_events(response)
        next_event(stream)
        time.sleep(5 * POLL_INTERVAL_S)
    with http.stream("GET", "/v1/streams/meter-1/events", headers=auth) as response:
        time.sleep(5 * POLL_INTERVAL_S)
    assert job_reads[0] > 2 and stream_reads[0] > 2  # they were polling
    assert polls_stop(job_reads) and polls_stop(stream_reads)


def test_job_events_need_the_owners_key(http: httpx.Client, auth: dict[str, str],
                                        other_auth: dict[str, str]) -> None:
    job = queued_job(http, auth)
    assert_problem(http.get(f"/v1/jobs/{job['id']}/events", headers=other_auth), 404)
    assert_problem(http.get("/v1/jobs/999999/events", headers=auth), 404)
    response = http.get(f"/v1/jobs/{job['id']}/events")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# ---- streams ------------------------------------------------------------------------------

def bare_stream(engine: Engine, series_id: int, name: str) -> int:
    """A stream row with no model, for tests that write its readings as the service would."""
    with transaction(create_session_factory(engine), write=True) as session:
        tenant_id = session.scalars(select(Series.tenant_id).where(Series.id == series_id)).one()
        stream = Stream(tenant_id=tenant_id, name=name, series_id=series_id, readings_applied=0)
        session.add(stream)
        session.flush()
        return stream.id


def apply(engine: Engine, stream_id: int, readings: list[tuple[int, float | None]],
          forecast: dict[str, Any], sums: dict[str, Any]) -> None:
    """Store readings and advance the stream row, as a post to another replica would."""
    with transaction(create_session_factory(engine), write=True) as session:
        stream = session.get(Stream, stream_id)
        assert stream is not None
        session.add_all([Reading(series_id=stream.series_id, ts=ts, value=value)
                         for ts, value in readings])
        stream.readings_applied += len(readings)
        stream.last_ts = readings[-1][0]
        stream.next_forecast, stream.accuracy = forecast, sums
        stream.updated_at = utcnow()


T0_S = 1_704_067_200  # 2024-01-01T00:00:00Z
STEP_S = 1800


def test_stream_events_one_per_applied_reading(http: httpx.Client, auth: dict[str, str],
                                               engine: Engine) -> None:
    series = create_series(http, auth)  # type: ignore[arg-type]
    stream_id = bare_stream(engine, series["id"], "meter-1")
    forecast = {"ts": "2024-01-01T01:30:00Z", "mean": 12.0, "lower_95": 10.0, "upper_95": 14.0}
    sums = {"n": 2, "abs_error": 1.0, "naive_n": 2, "naive_abs_error": 2.0,
            "model_abs_error_vs_naive": 1.0, "inside_80": 1, "inside_95": 2}
    with http.stream("GET", "/v1/streams/meter-1/events", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = lines_to_events(response)
        apply(engine, stream_id, [(T0_S, 10.0)], {**forecast, "ts": "2024-01-01T00:30:00Z"},
              {**sums, "n": 0})
        first = next_event(stream)
        assert first == Event("reading", {
            "stream_id": "meter-1", "ts": "2024-01-01T00:00:00Z", "value": 10.0,
            "readings_applied": 1, "forecast": {**forecast, "ts": "2024-01-01T00:30:00Z"},
            "accuracy": first.data["accuracy"]})
        assert first.data["accuracy"]["judged"] == 0
        # Two readings in one post (one missing): two events, the forecast on the last.
        apply(engine, stream_id, [(T0_S + STEP_S, None), (T0_S + 2 * STEP_S, 11.0)], forecast,
              sums)
        second, third = next_event(stream), next_event(stream)
        assert [(e.data["ts"], e.data["value"], e.data["readings_applied"])
                for e in (second, third)] == [("2024-01-01T00:30:00Z", None, 2),
                                              ("2024-01-01T01:00:00Z", 11.0, 3)]
        assert second.data["forecast"] is None and third.data["forecast"] == forecast
        assert third.data["accuracy"] == {"judged": 2, "mae": 0.5, "mase": None,
                                          "naive_mae": 1.0, "relative_mae": 0.5,
                                          "persistence_mae": None,
                                          "relative_mae_persistence": None,
                                          "baselines": {
                                              "naive": {"name": "seasonal naive",
                                                        "lag_steps": None},
                                              "persistence": {"name": "persistence",
                                                              "lag_steps": 1}},
                                          "coverage_80": 0.5, "coverage_95": 1.0}
        assert http.delete("/v1/streams/meter-1", headers=auth).status_code == 204
        assert next_event(stream) == Event("deleted", {"stream_id": "meter-1"})
        assert list(stream) == []


def test_stream_events_need_the_owners_key(http: httpx.Client, auth: dict[str, str],
                                           other_auth: dict[str, str], engine: Engine) -> None:
    series = create_series(http, auth)  # type: ignore[arg-type]
    fill_series(http, auth, series["id"], freq="30min")
    bare_stream(engine, series["id"], "meter-1")
    assert_problem(http.get("/v1/streams/meter-1/events", headers=other_auth), 404)
    assert_problem(http.get("/v1/streams/nope/events", headers=auth), 404)
    assert_problem(http.get("/v1/streams/meter-1/events"), 401)


def test_a_posted_reading_reaches_the_event_stream(http: httpx.Client, auth: dict[str, str],
                                                   settings: Settings,
                                                   artifacts: dict[str, Path]) -> None:
    warm = 300
    series_id = load_series(http, auth, warm)
    install_model(settings, artifacts["gru_window"], series_id)
    created = http.post("/v1/streams", json={"series_id": series_id, "stream_id": "meter-1"},
                        headers=auth)
    assert created.status_code == 201, created.text
    stamps, values = hourly_values()
    with http.stream("GET", "/v1/streams/meter-1/events", headers=auth) as response:
        stream = lines_to_events(response)
        posted = http.post("/v1/streams/meter-1/readings", headers=auth, json={
            "readings": [{"ts": stamps[warm].isoformat(), "value": float(values[warm])}]})
        assert posted.status_code == 200, posted.text
        event = next_event(stream)
    detail = http.get("/v1/streams/meter-1", headers=auth).json()
    assert event == Event("reading", {
        "stream_id": "meter-1", "ts": stamps[warm].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "value": float(values[warm]), "readings_applied": 1,
        "forecast": detail["next_forecast"], "accuracy": detail["accuracy"]})
    assert event.data["forecast"]["ts"] == stamps[warm + 1].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_openapi_documents_both_event_streams(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in ("/v1/jobs/{job_id}/events", "/v1/streams/{stream_id}/events"):
        operation = paths[path]["get"]
        assert "text/event-stream" in operation["responses"]["200"]["content"]
        assert "Authorization" in operation["description"]
