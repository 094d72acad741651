"""The client commands as a user runs them: `statecast` subprocesses against `statecast serve`."""

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.server import ServerProcess
from tests.test_cli import REPO_ROOT, cli_env, statecast_argv

COMMAND_TIMEOUT_S = 120.0


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(settings, tmp_path / "serve.log", workers=1)
    try:
        yield process
    finally:
        process.stop()


def statecast(server: ServerProcess, key: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(STATECAST_URL=server.url, STATECAST_API_KEY=key)
    return subprocess.run([*statecast_argv(), *argv], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def half_hourly_csv(path: Path, days: int) -> Path:
    rows = ["timestamp,kwh"]
    for i in range(days * 48):
        day, step = divmod(i, 48)
        rows.append(f"2024-03-{day + 1:02d}T{step // 2:02d}:{30 * (step % 2):02d}:00Z,"
                    f"{10 + 4 * math.sin(2 * math.pi * step / 48) + 0.2 * (i % 3):.3f}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_upload_train_forecast_and_stream_over_http(server: ServerProcess, auth: dict[str, str],
                                              tmp_path: Path) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    file = half_hourly_csv(tmp_path / "house.csv", days=8)
    done = statecast(server, key, "upload", str(file), "--series", "house", "--freq", "30min")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("384 readings into 'house': 384 new")
    assert "100%" in done.stderr

    listed = statecast(server, key, "series", "list")
    assert "house" in listed.stdout and "(1 series)" in listed.stdout

    trained = statecast(server, key, "train", "--series", "house", "--units", "4", "--epochs",
                        "2", "--wait")
    assert trained.returncode == 0, trained.stderr + server.log_path.read_text()[-3000:]
    assert "epoch 2/2" in trained.stderr and "100%" in trained.stderr
    assert "model (1 step)  naive (1 step)" in trained.stdout
    assert "interval coverage on the test part" in trained.stdout

    refused = statecast(server, key, "train", "--series", "house", "--units", "0")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("statecast: error: HTTP 422: ")
    assert "`spec.units` (got 0)" in refused.stderr and "greater than or equal to 1" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    forecast = statecast(server, key, "forecast", "--series", "house", "--horizon", "4", "--csv",
                         "--plot", str(tmp_path / "house.png"))
    assert forecast.returncode == 0, forecast.stderr
    lines = forecast.stdout.splitlines()
    assert lines[0] == "ts,mean,lower_80,upper_80,lower_95,upper_95"
    assert [line[:20] for line in lines[1:]] == [
        "2024-03-09T00:00:00Z", "2024-03-09T00:30:00Z", "2024-03-09T01:00:00Z",
        "2024-03-09T01:30:00Z"]
    assert (tmp_path / "house.png").read_bytes()[:4] == b"\x89PNG"

    created = statecast(server, key, "stream", "create", "meter:1", "--series", "house")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created stream meter:1 on series 'house'")
    assert "next: 2024-03-09T00:00:00Z" in created.stdout
    pushed = statecast(server, key, "stream", "push", "meter:1", "--ts", "2024-03-09T00:00:00Z",
                       "--value", "10.5")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith("applied 1, re-sent 0, filled 0; 1 in all")
    assert "next: 2024-03-09T00:30:00Z" in pushed.stdout
    shown = statecast(server, key, "stream", "show", "meter:1")
    assert "accuracy over 1 readings: MAE" in shown.stdout
    off_grid = statecast(server, key, "stream", "push", "meter:1", "--ts", "2024-03-09T00:40:00Z",
                         "--value", "1")
    assert off_grid.returncode == 1
    assert off_grid.stderr.strip() == (
        "statecast: error: HTTP 422: 1 timestamp(s) are not on the series' 30min grid "
        "[readings[0].ts = '2024-03-09T00:40:00Z': not on the 30min grid]")
