"""The README works as written: two set-up commands, and its command-line lines run as they are."""

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from app.cli import build_parser
from app.config import Settings
from tests.server import ServerProcess
from tests.test_cli import REPO_ROOT, cli_env, statecast_argv

README = REPO_ROOT / "README.md"
CLI_PREFIX = ".venv/bin/statecast "
README_CLI_TIMEOUT_S = 600


def sh_blocks() -> list[list[str]]:
    """The lines of each ```sh block, comments and blank lines dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL)
    return [[line.split("#", 1)[0].rstrip() for line in block.splitlines()
             if line.split("#", 1)[0].strip()] for block in blocks]


def cli_lines() -> list[list[str]]:
    """The README's `.venv/bin/statecast ...` lines as argument lists, in order."""
    return [shlex.split(line.removeprefix(CLI_PREFIX)) for block in sh_blocks() for line in block
            if line.startswith(CLI_PREFIX)]


def test_setting_up_takes_exactly_make_run_and_make_test() -> None:
    assert sh_blocks()[0] == ["make run", "make test"]


def test_the_cli_lines_are_valid_command_lines() -> None:
    lines = cli_lines()
    assert [argv[0] for argv in lines] == ["series", "upload", "train", "forecast",
                                           "series", "series", "upload", "train", "forecast"]
    parser = build_parser()
    for argv in lines:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"`statecast {shlex.join(argv)}` does not parse (exit {exc})")


def test_the_files_the_readme_sends_ship_with_the_repository() -> None:
    """A fresh clone has no shared/ beside it: curl would send an empty body."""
    sent = re.findall(r"--data-binary @(\S+)", README.read_text())
    sent += [argv[1] for argv in cli_lines() if argv[0] == "upload"]
    assert sent and all((REPO_ROOT / name).is_file() for name in sent), sent
    assert all(not name.startswith("../") for name in sent), sent


def test_make_run_installs_what_the_plot_line_needs() -> None:
    """`forecast --plot` draws with matplotlib: the install behind `make run` must include it."""
    assert any("--plot" in argv for argv in cli_lines())
    makefile = (REPO_ROOT / "Makefile").read_text()
    rule = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    extras = re.search(r'-e "\.\[([\w,]+)\]"', rule)
    assert extras, rule
    optional = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    installed = [d for extra in extras.group(1).split(",") for d in optional[extra]]
    assert any(d.startswith("matplotlib") for d in installed), installed
    assert re.search(r"^run: \$\(VENV\)/\.installed$", makefile, re.MULTILINE)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.mark.slow
def test_the_cli_lines_run_as_written(settings: Settings, auth: dict[str, str],
                                      tmp_path: Path) -> None:
    """Each README CLI line, run in order against `statecast serve`, exits 0 and does its job.

    It runs in a folder laid out like a fresh clone (its examples/, and no shared/ beside it), so
    the relative paths of the README hold and data/forecast.png lands in the temporary folder, not
    the repository.
    """
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "examples").symlink_to(REPO_ROOT / "examples")
    server = ServerProcess(settings, tmp_path / "serve.log", workers=1)
    env = cli_env(STATECAST_URL=server.url,
                  STATECAST_API_KEY=auth["Authorization"].removeprefix("Bearer "))
    try:
        for argv in cli_lines():
            done = subprocess.run([*statecast_argv(), *argv], env=env, cwd=clone,
                                  capture_output=True, text=True, timeout=README_CLI_TIMEOUT_S,
                                  check=False)
            assert done.returncode == 0, (f"`statecast {shlex.join(argv)}` exited "
                                          f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
    finally:
        server.stop()
    assert (clone / "data" / "forecast.png").read_bytes()[:4] == b"\x89PNG"
