"""Commands whose server side is a fake here: following a job, forecasting, streams."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import cli
from app.client import commands
from app.client.api import ApiClient

Route = Callable[[httpx.Request], Any]

SERIES = {"id": 7, "name": "house", "freq": "30min", "unit": "kWh", "description": None,
          "created_at": "2024-01-01T00:00:00Z"}
METRICS = {
    "test_origins": 3, "horizon": 2,
    "one_step": {"model": {"mae": 1.0, "rmse": 1.0, "smape": 1.0, "mase": 0.5},
                 "seasonal_naive": {"mae": 2.0, "rmse": 2.0, "smape": 2.0, "mase": 1.0}},
    "full_horizon": {"model": {"mae": 1.5, "rmse": 1.5, "smape": 1.5, "mase": 0.7},
                     "seasonal_naive": {"mae": 2.5, "rmse": 2.5, "smape": 2.5, "mase": 1.1}},
    "interval_coverage": {"80": 0.8, "95": 0.9},
}
POINTS = [{"ts": "2024-01-02T00:00:00Z", "mean": 1.5, "lower_80": 1.0, "upper_80": 2.0,
           "lower_95": 0.5, "upper_95": 2.5},
          {"ts": "2024-01-02T00:30:00Z", "mean": 1.75, "lower_80": 1.2, "upper_80": 2.2,
           "lower_95": 0.7, "upper_95": 2.7}]


def job(status: str, epoch: int, **extra: Any) -> dict[str, Any]:
    progress = None if status == "queued" else {
        "epoch": epoch, "epochs": 3, "loss": 0.5 / (epoch or 1), "val_loss": 0.6 / (epoch or 1),
        "elapsed_s": 2.0 * epoch, "eta_s": 2.0 * (3 - epoch)}
    return {"id": 5, "model_id": 9, "status": status, "progress": progress, "error": None,
            **extra}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Route]]:
    """Routes keyed "METHOD /path"; every command's client answers from them (200 with the JSON
    a route returns, or the httpx.Response it returns)."""
    routes: dict[str, Route] = {
        "GET /v1/series": lambda r: {"data": [SERIES], "count": 1},
        "GET /v1/series/7": lambda r: {**SERIES, "readings": 4, "first_ts": "2024-01-01T22:00:00Z",
                                       "last_ts": "2024-01-01T23:30:00Z"},
    }
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        route = routes.get(f"{request.method} {request.url.path}")
        if route is None:
            return httpx.Response(404, json={"status": 404, "detail": "no such route"})
        answer = route(request)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    monkeypatch.setattr(commands, "connect", lambda url, key: ApiClient(
        httpx.Client(base_url=url, transport=httpx.MockTransport(handle)), key))
    monkeypatch.setattr(commands, "POLL_INTERVAL_S", 0.0)
    routes["_seen"] = lambda r: seen  # for assertions on what was sent
    yield routes


def requests_seen(fake: dict[str, Route]) -> list[httpx.Request]:
    seen: list[httpx.Request] = fake["_seen"](httpx.Request("GET", "/"))
    return seen


def test_train_wait_shows_progress_then_metrics_beside_the_baseline(
        fake: dict[str, Route], capsys: pytest.CaptureFixture[str]) -> None:
    states = iter([job("queued", 0), job("running", 1), job("running", 2), job("succeeded", 3)])
    fake["POST /v1/models"] = lambda r: {"model": {"id": 9}, "job": job("queued", 0)}
    fake["GET /v1/jobs/5"] = lambda r: next(states)
    fake["GET /v1/models/9"] = lambda r: {"id": 9, "status": "ready", "series_ids": [7],
                                          "spec": {}, "resolved_spec": {"cell": "gru", "units": 4},
                                          "metrics": METRICS, "worse_than_naive": False,
                                          "is_default": True, "error": None}
    status = cli.main(["train", "--series", "house", "--cell", "gru", "--units", "4",
                       "--epochs", "3", "--wait", "--key", "k"])
    out, err = capsys.readouterr()
    assert status == 0
    sent = json.loads(next(r for r in requests_seen(fake) if r.method == "POST").content)
    assert sent == {"series_ids": [7], "spec": {"cell": "gru", "units": 4, "epochs": 3}}
    assert "job 5 [" in err and "100%" in err
    assert err.rstrip().endswith("epoch 3/3 loss 0.1667 val 0.2 succeeded in 6s")
    assert out.startswith("model 9 (ready, default): cell=gru, units=4\n")
    assert "model (1 step)  naive (1 step)" in out and "mase" in out


def test_a_failed_job_exits_non_zero_with_its_error(fake: dict[str, Route],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    fake["GET /v1/jobs/5"] = lambda r: job("failed", 1, error="series too short: 10 readings")
    assert cli.main(["job", "show", "5", "--wait", "--key", "k"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "statecast: error: job 5 failed: series too short: 10 readings")


def test_forecast_as_table_csv_and_plot(fake: dict[str, Route], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake["GET /v1/series/7/forecast"] = lambda r: {"series_id": 7, "model_id": 9,
                                                   "freq": "30min", "points": POINTS}
    fake["GET /v1/series/7/readings"] = lambda r: {"series_id": 7, "count": 4, "data": [
        {"ts": f"2024-01-01T{h}:{m}:00Z", "value": v}
        for (h, m), v in zip([("22", "00"), ("22", "30"), ("23", "00"), ("23", "30")],
                             [1.0, 2.0, None, 1.5], strict=True)]}
    assert cli.main(["forecast", "--series", "house", "--horizon", "2", "--key", "k"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "series 'house', model 9"
    assert out.splitlines()[1].split() == ["ts", "mean", "lower_80", "upper_80", "lower_95",
                                           "upper_95"]
    forecast_request = [r for r in requests_seen(fake) if r.url.path.endswith("/forecast")][-1]
    # Without --level the server's default levels apply; the CLI keeps no copy of them.
    assert forecast_request.url.params.get_list("level") == []
    assert forecast_request.url.params["horizon"] == "2"
    assert cli.main(["forecast", "--series", "house", "--horizon", "2", "--level", "95",
                     "--key", "k"]) == 0
    capsys.readouterr()
    forecast_request = [r for r in requests_seen(fake) if r.url.path.endswith("/forecast")][-1]
    assert forecast_request.url.params.get_list("level") == ["95"]

    plot = tmp_path / "f.png"
    assert cli.main(["forecast", "--series", "7", "--horizon", "2", "--csv", "--plot", str(plot),
                     "--history", "4", "--key", "k"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["ts,mean,lower_80,upper_80,lower_95,upper_95",
                                "2024-01-02T00:00:00Z,1.5,1.0,2.0,0.5,2.5",
                                "2024-01-02T00:30:00Z,1.75,1.2,2.2,0.7,2.7"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "plot written" in err
    readings_request = [r for r in requests_seen(fake) if r.url.path.endswith("/readings")][-1]
    assert readings_request.url.params["start"] == "2024-01-01T22:00:00+00:00"


STREAM = {"id": "meter:1", "series_id": 7, "model_id": 9, "pinned": False,
          "last_ts": "2024-01-01T23:30:00Z", "readings_applied": 0, "next_forecast": POINTS[0],
          "accuracy": {"judged": 0, "mae": None, "mase": None, "naive_mae": None,
                       "relative_mae": None, "coverage_80": None, "coverage_95": None},
          "created_at": "2024-01-02T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z"}


def test_stream_commands(fake: dict[str, Route], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    def posted(request: httpx.Request) -> dict[str, Any]:
        readings = json.loads(request.content)["readings"]
        return {"stream_id": "meter:1", "applied": [r["ts"] for r in readings], "duplicates": [],
                "filled": [], "rewarmed": None, "last_ts": readings[-1]["ts"],
                "readings_applied": len(readings), "forecast": POINTS[1:]}

    fake["POST /v1/streams"] = lambda r: {**STREAM, "id": json.loads(r.content)["stream_id"]}
    fake["POST /v1/streams/meter:1/readings"] = posted
    fake["GET /v1/streams/meter:1"] = lambda r: {**STREAM, "readings_applied": 3, "accuracy": {
        "judged": 3, "mae": 0.25, "mase": 0.5, "relative_mae": 0.8, "coverage_80": 2 / 3,
        "coverage_95": 1.0}}
    fake["GET /v1/streams/meter:1/forecast"] = lambda r: {"stream_id": "meter:1", "model_id": 9,
                                                          "points": POINTS[:1]}
    assert cli.main(["stream", "create", "meter:1", "--series", "house", "--key", "k"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "created stream meter:1 on series 'house' (model 9)"
    assert "next: 2024-01-02T00:00:00Z 1.5 [1, 2]@80% [0.5, 2.5]@95%" in out
    assert cli.main(["stream", "push", "meter:1", "--ts", "2024-01-02T00:00:00Z", "--value",
                     "1.25", "--key", "k"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("applied 1, re-sent 0, filled 0; 1 in all, last "
                                   "2024-01-02T00:00:00Z")
    assert out.splitlines()[1].startswith("next: 2024-01-02T00:30:00Z 1.75")
    file = tmp_path / "r.csv"
    file.write_text("ts,value\n2024-01-02T00:30:00Z,2\n2024-01-02T01:00:00Z,\n")
    assert cli.main(["stream", "push", "meter:1", "--file", str(file), "--key", "k"]) == 0
    pushed = json.loads([r for r in requests_seen(fake) if r.method == "POST"][-1].content)
    assert pushed == {"readings": [{"ts": "2024-01-02T00:30:00Z", "value": 2.0},
                                   {"ts": "2024-01-02T01:00:00Z", "value": None}]}
    capsys.readouterr()
    assert cli.main(["stream", "show", "meter:1", "--key", "k"]) == 0
    assert ("accuracy over 3 readings: MAE 0.25, MASE 0.5, MAE / seasonal-naive MAE 0.8; "
            "coverage 80% -> 67%, 95% -> 100%") in capsys.readouterr().out
    assert cli.main(["stream", "forecast", "meter:1", "--key", "k"]) == 0
    assert "2024-01-02T00:00:00Z" in capsys.readouterr().out
    assert cli.main(["stream", "push", "meter:1", "--key", "k"]) == 1
    assert "Give a reading with --ts and --value" in capsys.readouterr().err


def test_an_unreachable_server_says_where_it_looked(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tests.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["series", "list", "--url", url, "--key", "k"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"statecast: error: Cannot reach the statecast API at {url}")
    assert "--url / STATECAST_URL" in err and len(err.splitlines()) == 1


def test_plot_without_matplotlib_says_what_to_install(fake: dict[str, Route], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    assert cli.main(["forecast", "--series", "house", "--plot", str(tmp_path / "f.png"),
                     "--key", "k"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == ("statecast: error: --plot draws with matplotlib, which "
                                         "is not installed (pip install 'statecast[plot]'; "
                                         "`make run` installs it)")


def test_waiting_for_an_unclaimed_job_says_so(fake: dict[str, Route], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A job nobody claims: the bar says it waits for a worker, then a warning says why."""
    monkeypatch.setattr(commands, "UNCLAIMED_WARNING_S", 0.0)
    states = iter([job("queued", 0), job("queued", 0), job("succeeded", 3)])
    fake["GET /v1/jobs/5"] = lambda r: next(states)
    fake["GET /v1/models/9"] = lambda r: {"id": 9, "status": "ready", "series_ids": [7],
                                          "spec": {}, "metrics": None, "error": None}
    assert cli.main(["job", "show", "5", "--wait", "--key", "k"]) == 0
    err = capsys.readouterr().err
    assert "queued, waiting for a worker" in err.splitlines()[0]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1  # once, not at every poll
    assert "no worker has claimed job 5" in warnings[0] and "statecast worker" in warnings[0]


def test_a_job_that_just_started_reports_its_starting_phase(fake: dict[str, Route]) -> None:
    starting = {"id": 5, "model_id": 9, "status": "running", "error": None,
                "progress": {"phase": "starting", "epoch": 0, "epochs": 3}}
    assert commands.job_suffix(starting) == "starting: loading TensorFlow and the data"
    assert commands.job_suffix(job("running", 2)).startswith("epoch 2/3 loss 0.25")


def bulk_answer(request: httpx.Request) -> dict[str, Any]:
    """POST /v1/streams/readings as the contract says, for streams m1 and m2; others are 404."""
    entries: dict[str, dict[str, Any]] = {}
    for reading in json.loads(request.content)["readings"]:
        entry = entries.setdefault(reading["stream_id"], {
            "stream_id": reading["stream_id"], "status": "applied", "applied": 0,
            "duplicates": 0, "filled": 0, "last_ts": None, "next_forecast": None, "error": None})
        if reading["stream_id"] not in ("m1", "m2"):
            entry.update(status="refused", error={
                "status": 404, "title": "Not found",
                "detail": f"No stream with id {reading['stream_id']!r}"})
            continue
        entry["applied"] += 1
        entry["last_ts"] = max(entry["last_ts"] or "", reading["ts"])
        entry["next_forecast"] = POINTS[0]
    streams = list(entries.values())
    refused = sum(1 for r in json.loads(request.content)["readings"]
                  if entries[r["stream_id"]]["status"] == "refused")
    return {"applied": sum(e["applied"] for e in streams), "duplicates": 0, "refused": refused,
            "streams": streams}


FLEET_CSV = """ts,stream_id,value
2024-01-02T01:00:00Z,m1,3
2024-01-02T00:00:00Z,m1,1
2024-01-02T00:00:00Z,ghost,1
2024-01-02T00:30:00Z,ghost,1
2024-01-02T01:00:00Z,ghost,1
2024-01-02T01:30:00Z,ghost,1
2024-01-02T00:30:00Z,m1,2
2024-01-02T01:30:00Z,m1,4
2024-01-02T00:00:00Z,m2,
"""


def test_push_many_splits_the_file_into_requests_and_summarises_each_stream(
        fake: dict[str, Route], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Three readings a request: m1 spans two requests in time order, ghost is refused in its
    first and its last reading is not sent, m2's empty value goes as null; exit 1 (refused)."""
    monkeypatch.setattr(commands, "MAX_BULK_READINGS", 3)
    fake["POST /v1/streams/readings"] = bulk_answer
    file = tmp_path / "fleet.csv"
    file.write_text(FLEET_CSV)
    status = cli.main(["stream", "push-many", "--file", str(file), "--key", "k"])
    out, err = capsys.readouterr()
    assert status == 1
    sent = [json.loads(r.content)["readings"] for r in requests_seen(fake) if r.method == "POST"]
    assert [[(r["stream_id"], r["ts"][11:16]) for r in body] for body in sent] == [
        [("m1", "00:00"), ("m1", "00:30"), ("m1", "01:00")], [("m1", "01:30")],
        [("ghost", "00:00"), ("ghost", "00:30"), ("ghost", "01:00")], [("m2", "00:00")]]
    assert sent[0][0] == {"stream_id": "m1", "ts": "2024-01-02T00:00:00Z", "value": 1.0}
    assert sent[3] == [{"stream_id": "m2", "ts": "2024-01-02T00:00:00Z", "value": None}]
    assert all("rewarm" not in r.url.params for r in requests_seen(fake) if r.method == "POST")
    lines = out.splitlines()
    assert lines[0].split() == ["stream", "status", "applied", "duplicates", "filled",
                                "last", "reading", "reason"]
    assert lines[2].split() == ["m1", "applied", "4", "0", "0", "2024-01-02T01:30:00Z"]
    assert lines[3].split()[:6] == ["ghost", "refused", "0", "0", "0", "-"]
    assert lines[3].endswith("404: No stream with id 'ghost' (1 later readings not sent)")
    assert lines[4].split() == ["m2", "applied", "1", "0", "0", "2024-01-02T00:00:00Z"]
    assert lines[5] == ("5 applied, 0 duplicates, 4 refused; 3 streams (1 refused) in "
                        "4 request(s)")
    assert "request 4/4" in err

    # Nothing refused: exit 0; --rewarm rides along; --json gives the totals as data.
    file.write_text("stream_id,ts,value\nm2,2024-01-02T00:30:00Z,5\nm1,2024-01-02T02:00:00Z,1\n")
    assert cli.main(["stream", "push-many", "--file", str(file), "--rewarm", "--json",
                     "--key", "k"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["applied"], body["refused"], body["requests"]) == (2, 0, 1)
    assert [s["stream_id"] for s in body["streams"]] == ["m2", "m1"]
    assert requests_seen(fake)[-1].url.params["rewarm"] == "true"


@pytest.mark.parametrize("text,message", [
    ("stream,ts,value\nm1,2024-01-02T00:00:00Z,1\n", "missing stream_id (got stream, ts, value)"),
    ("stream_id,ts,value\nm1,2024-01-02T00:00:00Z,1\nm1,2024-01-02T00:30:00Z,high\n",
     "line 3: value 'high' is not a number"),
    ("stream_id,ts,value\nm1,2024-01-02T00:00:00Z,1\nm1,noon,2\n",
     "line 3: ts 'noon' is not an ISO 8601 timestamp"),
    ("stream_id,ts,value\nm1,2024-01-02T00:00:00Z,nan\n", "line 2: value 'nan' is not a number"),
    ("stream_id,ts,value\n,2024-01-02T00:00:00Z,1\n", "line 2: a reading needs a stream_id"),
    ("stream_id,ts,value\n", "no readings"),
])
def test_push_many_checks_the_file_before_sending_anything(
        fake: dict[str, Route], tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
        message: str) -> None:
    fake["POST /v1/streams/readings"] = bulk_answer
    file = tmp_path / "fleet.csv"
    file.write_text(text)
    assert cli.main(["stream", "push-many", "--file", str(file), "--key", "k"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"statecast: error: {file}") and message in err, err
    assert not [r for r in requests_seen(fake) if r.method == "POST"]


def test_push_many_stops_at_a_request_refused_whole_and_names_the_line(
        fake: dict[str, Route], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The server refuses the second request whole: the first one's summary is printed, the
    error names the file's line, and no later request is sent."""
    monkeypatch.setattr(commands, "MAX_BULK_READINGS", 1)
    answers = iter([None, {"status": 422, "detail": "Invalid value for `readings.0.ts`",
                           "errors": [{"field": "readings.0.ts", "value": "x", "message": "bad"}]}])

    def route(request: httpx.Request) -> Any:
        problem = next(answers)
        if problem is None:
            return bulk_answer(request)
        return httpx.Response(problem["status"], json=problem)

    fake["POST /v1/streams/readings"] = route
    file = tmp_path / "fleet.csv"
    file.write_text("stream_id,ts,value\nm1,2024-01-02T00:00:00Z,1\nm2,2024-01-02T00:00:00Z,2\n"
                    "m1,2024-01-02T00:30:00Z,3\n")
    assert cli.main(["stream", "push-many", "--file", str(file), "--key", "k"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[2].split()[:3] == ["m1", "applied", "1"]
    assert err.strip().splitlines()[-1] == (
        f"statecast: error: request 2 of 3 was refused whole: HTTP 422: Invalid value for "
        f"`{file} line 4 (ts)` [{file} line 4 (ts) = 'x': bad]; the 1 request(s) before it "
        "were applied as summarised above")
    assert len([r for r in requests_seen(fake) if r.method == "POST"]) == 2


def test_a_reader_that_stops_early_ends_the_output_quietly(
        fake: dict[str, Route], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`statecast forecast ... | head`: no BrokenPipeError traceback, the status of SIGPIPE."""
    import os
    import sys

    fake["GET /v1/series/7/forecast"] = lambda r: {"series_id": 7, "model_id": 9,
                                                   "freq": "30min", "points": POINTS * 5000}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    with os.fdopen(write_end, "w") as closed_pipe, monkeypatch.context() as patched:
        patched.setattr(sys, "stdout", closed_pipe)
        status = cli.main(["forecast", "--series", "house", "--csv", "--key", "k"])
    assert status == cli.EXIT_BROKEN_PIPE == 141
    assert "Traceback" not in capsys.readouterr().err
