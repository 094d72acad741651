"""Where the command line finds its URL and key: flag, environment, user config, key file."""

import os
import stat
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import cli
from app.client import commands, credentials
from app.client.api import ApiClient, ClientError
from app.config import Settings
from tests.client.test_commands import InProcessClient
from tests.server import free_port
from tests.test_cli import cli_env, statecast_argv


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(credentials.KEY_ENV, raising=False)
    monkeypatch.delenv(credentials.URL_ENV, raising=False)


@pytest.fixture
def seen(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """(url, key) of each connection a command opens, answered by the in-process app."""
    calls: list[tuple[str, str | None]] = []

    def connect(url: str, key: str | None) -> ApiClient:
        calls.append((url, key))
        return InProcessClient(client, key)

    monkeypatch.setattr(commands, "connect", connect)
    return calls


def key_of(auth: dict[str, str]) -> str:
    return auth["Authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("argv", [["--key", "K", "--url", "http://h:1", "series", "list"],
                                  ["series", "list", "--key", "K", "--url", "http://h:1"],
                                  ["--url", "http://h:1", "series", "list", "--key", "K"]])
def test_url_and_key_work_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.url, args.key) == ("http://h:1", "K")


def test_a_flag_after_the_subcommand_wins(no_env: None) -> None:
    args = cli.build_parser().parse_args(["--key", "before", "series", "list", "--key", "after"])
    assert args.key == "after"


def test_the_key_comes_from_flag_then_environment_then_config_then_key_file(
        no_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "api_key"
    key_file.write_text("from-file\n")
    assert credentials.resolve_key(None, key_file).value == "from-file"
    credentials.write_user_config(url="http://127.0.0.1:9", key="from-config")
    assert credentials.resolve_key(None, key_file).value == "from-config"
    monkeypatch.setenv(credentials.KEY_ENV, "from-env")
    assert credentials.resolve_key(None, key_file).value == "from-env"
    assert credentials.resolve_key("from-flag", key_file).value == "from-flag"


def test_no_key_names_every_place_tried(no_env: None, tmp_path: Path,
                                        user_config_home: Path) -> None:
    with pytest.raises(ClientError) as caught:
        credentials.resolve_key(None, tmp_path / "api_key")
    message = str(caught.value)
    for place in ("--key", credentials.KEY_ENV, str(user_config_home / "statecast" / "config.json"),
                  str(tmp_path / "api_key"), "statecast login"):
        assert place in message, place


def test_a_command_without_a_key_says_where_it_looked_and_sends_nothing(
        no_env: None, seen: list[tuple[str, str | None]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STATECAST_KEY_FILE", str(tmp_path / "nowhere"))
    from app.config import get_settings

    get_settings.cache_clear()
    try:
        assert cli.main(["series", "list"]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert err.startswith("statecast: error: No API key found; tried --key (not given)")
    assert seen == []


def test_login_checks_the_key_then_saves_it_for_any_directory(
        no_env: None, seen: list[tuple[str, str | None]], auth: dict[str, str],
        user_config_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["login", "--url", "http://api.test:8000", "--key", "sc_wrong"]) == 1
    assert "not saved: HTTP 401" in capsys.readouterr().err
    assert not credentials.user_config_path().exists()

    assert cli.main(["--url", "http://api.test:8000", "login", "--key", key_of(auth)]) == 0
    path = user_config_home / "statecast" / "config.json"
    assert str(path) in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Later commands, given neither flag nor variable, use both.
    seen.clear()
    assert cli.main(["series", "list"]) == 0
    assert seen == [("http://api.test:8000", key_of(auth))]


def test_serve_first_start_saves_the_key_where_the_cli_finds_it(
        settings: Settings, tmp_path: Path, user_config_home: Path) -> None:
    """The embedded default's first key reaches the command line run from another directory."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the first-start key is the embedded SQLite default's")
    settings.key_file = tmp_path / "data" / "api_key"
    settings.port = free_port()
    cli.bootstrap_key(settings)
    saved = credentials.read_user_config()
    assert saved == {"url": f"http://127.0.0.1:{settings.port}",
                     "key": settings.key_file.read_text().strip()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = cli_env(STATECAST_DATABASE_URL=settings.database_url)
    assert env["XDG_CONFIG_HOME"] == os.environ["XDG_CONFIG_HOME"]
    # Nothing listens there: the error shows that the saved URL was used.
    done = subprocess.run([*statecast_argv(), "series", "list"], env=env, cwd=elsewhere,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert f"Cannot reach the statecast API at http://127.0.0.1:{settings.port}" in done.stderr
