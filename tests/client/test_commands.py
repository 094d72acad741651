"""The `statecast` client commands, run in-process against the app through its TestClient."""

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import cli
from app.client import commands
from app.client.api import ApiClient
from app.config import Settings
from app.ml.spec import ModelSpec
from tests.api.test_forecast_covariates import (
    AHEAD,
    WARM,
    covariate_artifact,
    temperature_values,
    with_weather,
)
from tests.streams.conftest import (
    artifacts,
    fleet_csv,
    hourly_values,
    streams_on_the_series,
)

# The tiny trained models, for the streams the bulk command feeds, and a covariate model.
__all__ = ["artifacts", "covariate_artifact", "with_weather"]

Run = Callable[..., tuple[int, str, str]]


class InProcessClient(ApiClient):
    """Keeps the shared TestClient open when a command closes its client."""

    def close(self) -> None:
        pass


@pytest.fixture
def run(client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """`run("series", "list")` -> (exit status, stdout, stderr), with tenant alice's key."""
    key = auth["Authorization"].removeprefix("Bearer ")
    seen: list[tuple[str, str | None]] = []

    def connect(url: str, key: str | None) -> ApiClient:
        seen.append((url, key))
        return InProcessClient(client, key)

    monkeypatch.setattr(commands, "connect", connect)
    monkeypatch.delenv(commands.URL_ENV, raising=False)
    monkeypatch.delenv(commands.KEY_ENV, raising=False)

    def run_command(*argv: str, key_arg: bool = True) -> tuple[int, str, str]:
        capsys.readouterr()
        status = cli.main([*argv, *(["--key", key] if key_arg else [])])
        out, err = capsys.readouterr()
        # The in-process server's JSON log lines share stderr with the command's messages.
        err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("{"))
        return status, out, err

    yield run_command


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_series_create_list_show_delete(run: Run) -> None:
    status, out, _ = run("series", "create", "building-7", "--freq", "30min", "--unit", "kWh")
    assert status == 0 and "created series" in out and "'building-7' (30min)" in out
    status, out, _ = run("series", "list")
    header, _, row, count = out.splitlines()
    assert header.split() == ["id", "name", "freq", "unit", "created"]
    assert row.split()[1:4] == ["building-7", "30min", "kWh"]
    assert count == "(1 series)"
    status, out, _ = run("series", "show", "building-7")
    assert status == 0 and "readings" in out and "0" in out
    status, out, _ = run("series", "delete", "building-7", "--yes")
    assert status == 0 and "deleted series" in out
    assert "(0 series)" in run("series", "list")[1]


def test_upload_with_csv_options_creates_the_series_and_shows_progress(run: Run,
                                                                       tmp_path: Path) -> None:
    body = '"";"MT_001";"MT_002"\n' + "".join(
        f'"2011-01-01 {h:02d}:{m:02d}:00";0;{h},5\n' for h in range(24) for m in (0, 15, 30, 45))
    file = write(tmp_path, "uci.csv", body)
    status, out, err = run("upload", str(file), "--series", "mt2", "--freq", "15min", "--sep", ";",
                           "--decimal", ",", "--value-col", "MT_002")
    assert status == 0, err
    assert out.strip().startswith("96 readings into 'mt2': 96 new, 0 updated, 0 unchanged")
    assert "created series" in err
    assert "upload uci.csv [" in err and "100%" in err
    status, out, _ = run("upload", str(file), "--series", "mt2", "--sep", ";", "--decimal", ",",
                         "--value-col", "MT_002")
    assert status == 0 and "0 new, 0 updated, 96 unchanged" in out


def test_upload_to_a_missing_series_without_freq_says_how_to_create_it(run: Run,
                                                                       tmp_path: Path) -> None:
    file = write(tmp_path, "a.csv", "ts,value\n2024-01-01 00:00,1\n")
    status, out, err = run("upload", str(file), "--series", "nope")
    assert status == 1 and out == ""
    assert err.startswith("statecast: error: No series named 'nope'")
    assert "statecast series create" in err and len(err.strip().splitlines()) == 1


def test_api_errors_are_one_line_with_the_fields_at_fault(run: Run, tmp_path: Path) -> None:
    run("series", "create", "s", "--freq", "30min")
    file = write(tmp_path, "bad.csv", "ts,value\n2024-01-01 00:00,x\n2024-01-01 00:30,inf\n")
    status, out, err = run("upload", str(file), "--series", "s")
    assert status == 1 and out == ""
    line = err.strip().splitlines()[-1]
    assert line.startswith("statecast: error: HTTP 422: ")
    assert "value (row 1) = 'x': not a finite number" in line
    assert "value (row 2) = 'inf'" in line
    status, _, err = run("series", "create", "bad", "--freq", "7parsecs")
    assert status == 1 and "HTTP 422" in err and "freq = '7parsecs'" in err


def test_a_wrong_key_is_one_line_401(run: Run) -> None:
    status, out, err = run("series", "list", "--key", "sc_wrong", key_arg=False)
    assert status == 1 and out == ""
    assert err.strip() == "statecast: error: HTTP 401: The API key is not valid"


def test_the_key_comes_from_the_environment_then_the_key_file(
        run: Run, monkeypatch: pytest.MonkeyPatch, auth: dict[str, str], tmp_path: Path) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    monkeypatch.setenv(commands.KEY_ENV, key)
    assert run("series", "list", key_arg=False)[0] == 0
    monkeypatch.delenv(commands.KEY_ENV)
    key_file = write(tmp_path, "api_key", key + "\n")
    monkeypatch.setenv("STATECAST_KEY_FILE", str(key_file))
    cli.get_settings.cache_clear()
    try:
        assert run("series", "list", key_arg=False)[0] == 0
    finally:
        cli.get_settings.cache_clear()


def test_json_output_is_the_apis_body(run: Run) -> None:
    import json

    run("series", "create", "j", "--freq", "h")
    status, out, _ = run("series", "list", "--json")
    assert status == 0 and json.loads(out)["data"][0]["name"] == "j"


def test_train_flags_cover_every_spec_field() -> None:
    assert [name for name, _ in commands.SPEC_FLAGS] == list(ModelSpec.model_fields)


def test_only_given_spec_flags_are_sent() -> None:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--series", "s", "--units", "4", "--no-calendar",
                              "--cell", "gru", "--learning-rate", "0.01"])
    assert commands.spec_from_args(args) == {"cell": "gru", "units": 4, "calendar": False,
                                             "learning_rate": 0.01}
    ModelSpec(**commands.spec_from_args(args))  # the server accepts what is sent


def test_train_without_wait_prints_how_to_follow(run: Run, tmp_path: Path) -> None:
    run("series", "create", "t", "--freq", "30min")
    csv = tmp_path / "t.csv"  # long enough for the default spec's parts
    csv.write_text("ts,value\n" + "".join(
        f"2024-01-{1 + i // 48:02d}T{i % 48 // 2:02d}:{30 * (i % 2):02d}:00Z,{i % 48}\n"
        for i in range(300)))
    assert run("upload", str(csv), "--series", "t")[0] == 0
    status, out, err = run("train", "--series", "t", "--units", "4", "--epochs", "2")
    assert status == 0, err
    assert "is training as job" in out and "statecast job show" in out


def test_push_many_feeds_several_streams_and_says_which_were_refused(
        run: Run, client: TestClient, auth: dict[str, str], settings: Settings,
        artifacts: dict[str, Path], tmp_path: Path) -> None:
    """Against the real bulk endpoint: m1 and m2 applied, ghost refused (exit 1); sent again,
    the readings come back as duplicates."""
    warm = 300
    streams_on_the_series(client, auth, settings, artifacts["lstm_stateful"], ("m1", "m2"), warm)
    stamps, _ = hourly_values()
    fleet = write(tmp_path, "fleet.csv", fleet_csv(warm))

    status, out, _ = run("stream", "push-many", "--file", str(fleet))
    assert status == 1, out
    lines = out.splitlines()
    last = f"{stamps[warm + 1]:%Y-%m-%dT%H:%M:%S}"
    assert lines[2].split()[:5] == ["m1", "applied", "2", "0", "0"] and last in lines[2]
    assert lines[3].split()[:2] == ["ghost", "refused"] and "404: No stream with id" in lines[3]
    assert lines[4].split()[:5] == ["m2", "applied", "2", "0", "0"]
    assert lines[5].startswith("4 applied, 0 duplicates, 2 refused; 3 streams (1 refused)")
    assert client.get("/v1/streams/m1", headers=auth).json()["readings_applied"] == 2

    known = write(tmp_path, "known.csv", "".join(
        line for line in fleet_csv(warm).splitlines(keepends=True) if not line.startswith("ghost")))
    status, out, _ = run("stream", "push-many", "--file", str(known))
    assert status == 0, out
    assert out.splitlines()[-1].startswith("0 applied, 4 duplicates, 0 refused")
    assert client.get("/v1/streams/m1", headers=auth).json()["readings_applied"] == 2


def test_upload_flags_cover_every_upload_option(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/series/{series_id}/readings"]
    options = {p["name"] for p in operation["post"]["parameters"] if p["in"] == "query"}
    assert set(commands.UPLOAD_OPTIONS) == options
    parser = cli.build_parser()
    args = parser.parse_args(["upload", "f.csv", "--series", "s", "--ts-col", "t",
                              "--value-col", "v", "--sep", ";", "--decimal", ",",
                              "--ts-format", "%d.%m.%Y", "--no-dayfirst", "--ambiguous", "infer",
                              "--on-conflict", "replace"])
    assert {name: getattr(args, name) for name in commands.UPLOAD_OPTIONS} == {
        "ts_col": "t", "value_col": "v", "sep": ";", "decimal": ",", "ts_format": "%d.%m.%Y",
        "dayfirst": False, "ambiguous": "infer", "on_conflict": "replace", "covariate_cols": None}


def test_upload_reads_day_first_local_times_as_the_server_asks(run: Run, client: TestClient,
                                                                auth: dict[str, str],
                                                                tmp_path: Path) -> None:
    file = write(tmp_path, "berlin.csv", "when,kwh\n04/03/2024 00:00,1\n04/03/2024 01:00,2\n")
    status, _, err = run("upload", str(file), "--series", "berlin", "--freq", "h",
                         "--timezone", "Europe/Berlin")
    assert status == 1 and "dayfirst=true" in err
    status, out, err = run("upload", str(file), "--series", "berlin", "--freq", "h",
                           "--timezone", "Europe/Berlin", "--dayfirst")
    assert status == 0, err
    assert "(2024-03-03T23:00:00Z .. 2024-03-04T00:00:00Z)" in out
    file = write(tmp_path, "iso.csv", "when,kwh\n2024-03-04 02:00,3\n")
    status, out, err = run("upload", str(file), "--series", "berlin", "--ts-format",
                           "%Y-%m-%d %H:%M")
    assert status == 0 and "2024-03-04T01:00:00Z" in out, err
    status, out, _ = run("series", "show", "berlin", "--json")
    assert '"timezone": "Europe/Berlin"' in out


def test_a_failed_upload_with_freq_leaves_no_series_behind(run: Run, tmp_path: Path) -> None:
    file = write(tmp_path, "bad.csv", "ts,value\n2024-01-01 00:10,1\n")
    status, _, err = run("upload", str(file), "--series", "fresh", "--freq", "30min")
    assert status == 1 and "not on the series' 30min grid" in err
    assert "created series" not in err
    assert "(0 series)" in run("series", "list")[1]
    # An upload into a series that existed before leaves the series alone.
    run("series", "create", "kept", "--freq", "30min")
    status, _, _ = run("upload", str(file), "--series", "kept", "--freq", "30min")
    assert status == 1 and "(1 series)" in run("series", "list")[1]
def test_keys_list_rotate_and_revoke(run: Run, client: TestClient) -> None:
    status, out, _ = run("keys", "list")
    assert status == 0 and "(1 keys)" in out and "*" in out
    [old_id] = [line.split()[0] for line in out.splitlines()[2:-1]]
    status, new_key, err = run("keys", "rotate", old_id)
    assert status == 0 and new_key.startswith("sc_"), err
    assert f"statecast keys revoke {old_id}" in err
    new = {"Authorization": f"Bearer {new_key.strip()}"}
    assert client.get("/v1/series", headers=new).status_code == 200
    assert "(2 keys)" in run("keys", "list")[1]
    status, out, err = run("keys", "revoke", old_id)
    assert status == 0 and f"revoked key {old_id}" in out, err
    listed = client.get("/v1/keys", headers=new).json()["data"]
    assert [k["name"] for k in listed] == ["default"] and listed[0]["current"]
    status, _, err = run("keys", "revoke", str(listed[0]["id"]), "--key", new_key.strip(),
                         key_arg=False)
    assert status == 1 and "409" in err and "last" in err


def test_series_with_covariates_and_calendar(run: Run, tmp_path: Path) -> None:
    assert run("series", "create", "temperature", "--freq", "h")[0] == 0
    assert run("series", "create", "wind", "--freq", "h")[0] == 0
    status, out, err = run("series", "create", "load", "--freq", "30min", "--holidays", "US",
                           "--covariate", "temperature_c=temperature",
                           "--special-day", "2024-12-27=plant shutdown")
    assert status == 0, err
    assert "covariate 'temperature_c': series 1" in out and "holidays US" in out
    assert "special day 2024-12-27: plant shutdown" in out
    status, out, err = run("series", "link", "load", "wind", "--as", "wind", "--past-only")
    assert status == 0, err
    assert "covariate 'wind': series 2 (past only)" in out and "temperature_c" in out
    status, out, err = run("series", "update", "load", "--no-holidays")
    assert status == 0 and "holidays" not in out and "special day" in out
    status, out, _ = run("series", "update", "load", "--holidays", "XX")
    assert status == 1
    status, _, err = run("series", "update", "load", "--holidays", "XX")
    assert status == 1 and "HTTP 422" in err and "holidays = 'XX'" in err
    file = write(tmp_path, "load.csv", "ts,load,temp\n2024-01-01 00:00,10,5\n"
                                       "2024-01-01 00:30,11,\n2024-01-01 01:00,,6\n")
    status, out, err = run("upload", str(file), "--series", "load",
                           "--covariate-cols", "temp:temperature_c")
    assert status == 0, err
    assert out.splitlines()[0].startswith("2 readings into 'load': 2 new")
    assert out.splitlines()[1] == ("2 readings into covariate 'temperature_c': 2 new, "
                                   "0 updated, 0 unchanged")
    status, out, err = run("series", "unlink", "load", "wind")
    assert status == 0 and "wind" not in out
    status, _, err = run("series", "unlink", "load", "wind")
    assert status == 1 and "no covariate named 'wind'" in err
    status, _, err = run("series", "create", "x", "--freq", "h", "--covariate", "temperature")
    assert status == 1 and "--covariate takes KEY=VALUE" in err


def test_forecast_with_covariates_from_a_file(run: Run, tmp_path: Path,
                                              with_weather: dict[str, int]) -> None:
    stamps, _ = hourly_values(WARM + AHEAD)
    weather = temperature_values(WARM + AHEAD)
    rows = "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},{w}\n"
                   for t, w in zip(stamps[WARM:], weather[WARM:], strict=True))
    file = write(tmp_path, "weather.csv", "ts,temperature\n" + rows)
    status, out, err = run("forecast", "--series", "load", "--covariates", str(file))
    assert status == 0, err
    assert out.splitlines()[0] == f"series 'load', model {with_weather['model']}, covariates temperature"
    assert sum(line.startswith("2024-01-22T") for line in out.splitlines()) == AHEAD
    status, _, err = run("forecast", "--series", "load", "--covariates", str(file),
                         "--horizon", "30")
    assert status == 1 and "HTTP 422" in err and "covariates.temperature" in err
    late = write(tmp_path, "late.csv", "ts,temperature\n" + rows.split("\n", 1)[1])
    status, _, err = run("forecast", "--series", "load", "--covariates", str(late))
    assert status == 1 and "is not the forecast's step" in err
    status, _, err = run("forecast", "--series", "load", "--horizon", str(AHEAD + 1))
    assert status == 1 and "HTTP 422" in err and "'temperature'" in err
