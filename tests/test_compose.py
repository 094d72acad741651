"""docker-compose.yml names only real commands and settings, and its topology runs natively.

Here the file is checked by reading it, and the topology (migrate once, then serve with
auto-migrate off, keys from the command line) is run as plain processes against a fresh
PostgreSQL database with the api service's environment: fast, and without Docker.
tests/deploy/ runs the file itself on a real Docker engine where one answers (and always in CI).
"""

import argparse
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.cli import build_parser
from app.config import Settings
from tests.databases import create_postgres_database, drop_postgres_database, with_database
from tests.server import free_port
from tests.test_cli import REPO_ROOT, cli_env, run_statecast, statecast_argv

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PREFIX = "STATECAST_"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# ${NAME}, ${NAME:-default} and ${NAME-default}, as Compose interpolates them.
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> str:
    """A Compose value with each ${VAR:-default} replaced by its default (empty if none)."""
    return VARIABLE.sub(lambda m: m.group("default") or "", str(value))


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def statecast_services() -> dict[str, dict[str, Any]]:
    """The services that run the statecast image (every one but the database)."""
    services: dict[str, dict[str, Any]] = load_compose()["services"]
    return {name: spec for name, spec in services.items()
            if str(spec.get("image", "")).startswith("statecast")}


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):  # the `- NAME=value` spelling
        raw = dict(item.split("=", 1) for item in raw)
    return {str(name): interpolate(value) for name, value in raw.items()}


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


def test_compose_runs_the_statecast_image_for_migrate_api_and_worker() -> None:
    services = load_compose()["services"]
    assert set(statecast_services()) == {"migrate", "api", "worker"}
    assert services["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    # Training belongs to the worker service: API replicas start no workers of their own.
    assert environment(services["api"])["STATECAST_EMBEDDED_WORKERS"] == "0"


def test_the_image_is_built_once() -> None:
    """One service builds statecast:latest; the others run it by name instead of rebuilding it."""
    services = statecast_services()
    builders = [name for name, spec in services.items() if "build" in spec]
    assert builders == ["migrate"]
    assert {spec["image"] for spec in services.values()} == {"statecast:latest"}


def test_the_api_is_published_on_loopback_by_default() -> None:
    ports = [interpolate(p) for p in statecast_services()["api"]["ports"]]
    assert ports == ["127.0.0.1:8000:8000"]


def test_the_image_installs_pinned_versions() -> None:
    """Every dependency in pyproject.toml has a pin in constraints.txt, which the image uses."""
    import tomllib

    from scripts.constraints import canonical

    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"]
    names = {canonical(re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0]) for d in dependencies}
    assert names - set(pins) == set(), "run `make constraints` after editing the dependencies"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile


def test_the_image_keeps_tensorflow_quiet_and_ships_no_placeholder_models() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "TF_ENABLE_ONEDNN_OPTS=0" in dockerfile and "TF_CPP_MIN_LOG_LEVEL=2" in dockerfile
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "models" in ignored and "!models/.gitkeep" not in ignored


@pytest.mark.parametrize("service", ["migrate", "api", "worker"])
def test_service_command_is_a_statecast_subcommand(service: str) -> None:
    command = [interpolate(part) for part in statecast_services()[service]["command"]]
    assert command[0] == "statecast", command
    parser = build_parser()
    if command[1] not in subcommands(parser):
        pytest.fail(f"`{' '.join(command)}`: {command[1]!r} is not one of {subcommands(parser)}")
    try:
        parser.parse_args(command[1:])
    except SystemExit as exc:
        pytest.fail(f"`{' '.join(command)}` is not a valid statecast command line (exit {exc})")


@pytest.mark.parametrize("service", ["migrate", "api", "worker"])
def test_service_environment_names_real_settings(service: str) -> None:
    env = environment(statecast_services()[service])
    assert env, f"{service} sets no STATECAST_ variables"
    unknown = {n for n in env if not n.startswith(PREFIX)
               or n.removeprefix(PREFIX).lower() not in Settings.model_fields}
    assert not unknown, f"{service} sets {unknown}, which no field of app.config.Settings reads"
    fields = {n.removeprefix(PREFIX).lower(): v for n, v in env.items()}
    Settings.model_validate(fields)  # and each value is one the setting accepts
    assert fields["auto_migrate"] == "false", "only the migrate service changes the schema"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_models_volume_is_mounted_at_the_model_dir(service: str) -> None:
    spec = statecast_services()[service]
    model_dir = environment(spec)["STATECAST_MODEL_DIR"]
    mounts = [str(v).split(":") for v in spec["volumes"]]
    assert ["models", model_dir] in [m[:2] for m in mounts], mounts
    assert "models" in load_compose()["volumes"]


@pytest.fixture
def fresh_postgres_url(pg_admin_url: str | None) -> Iterator[str]:
    """A new, empty PostgreSQL database; skipped without one (it fails instead in CI)."""
    if pg_admin_url is None:
        pytest.skip("PostgreSQL not configured (set STATECAST_TEST_DATABASE_URL)")
    name = create_postgres_database(pg_admin_url)
    try:
        yield with_database(pg_admin_url, name)
    finally:
        drop_postgres_database(pg_admin_url, name)


def wait_until_ready(server: subprocess.Popen[str], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`statecast serve` exited {server.returncode} before it was ready:\n"
                        f"{log_path.read_text()}")
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2.0)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.2)
    pytest.fail(f"`statecast serve` not ready after {STARTUP_TIMEOUT_S} s: {last}\n"
                f"{log_path.read_text()}")


def stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM, as `docker compose stop` sends it; SIGKILL after STOP_TIMEOUT_S."""
    process.terminate()
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"`{process.args!r}` ignored SIGTERM for {STOP_TIMEOUT_S} s")


@pytest.mark.slow
def test_compose_topology_runs_natively_on_postgresql(fresh_postgres_url: str,
                                                      tmp_path: Path) -> None:
    """migrate, then api and worker, as compose runs them; a key, a series, readings over HTTP."""
    services = statecast_services()
    port = free_port()
    env = cli_env(**{**environment(services["api"]),
                     "STATECAST_DATABASE_URL": fresh_postgres_url,
                     "STATECAST_HOST": "127.0.0.1",
                     "STATECAST_PORT": str(port),
                     "STATECAST_MODEL_DIR": str(tmp_path / "models"),
                     "STATECAST_KEY_FILE": str(tmp_path / "api_key")})
    run_statecast(*services["migrate"]["command"][1:], env=env, cwd=tmp_path)

    log_path = tmp_path / "serve.log"
    worker_log_path = tmp_path / "worker.log"
    with log_path.open("w") as log, worker_log_path.open("w") as worker_log:
        server = subprocess.Popen([*statecast_argv(), *services["api"]["command"][1:]], env=env,
                                  cwd=tmp_path, text=True, stdout=log, stderr=subprocess.STDOUT)
        worker = subprocess.Popen([*statecast_argv(), *services["worker"]["command"][1:]],
                                  env=env, cwd=tmp_path, text=True, stdout=worker_log,
                                  stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(server, base_url, log_path)
            key = run_statecast("keys", "create", "--tenant", "t", env=env,
                                cwd=tmp_path).stdout.strip()
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                              timeout=30.0) as http:
                created = http.post("/v1/series", json={"name": "feeder-1", "freq": "15min"})
                assert created.status_code == 201, created.text
                sid = created.json()["id"]
                upload = http.post(f"/v1/series/{sid}/readings",
                                   headers={"Content-Type": "text/csv"},
                                   content=b"ts,kw\n2024-03-01 00:15,4.5\n2024-03-01 00:00,4\n"
                                           b"2024-03-01 00:30,\n")
                assert upload.status_code == 200, upload.text
                assert upload.json()["inserted"] == 3
                back = http.get(f"/v1/series/{sid}/readings")
                assert back.status_code == 200, back.text
                assert back.json()["data"] == [{"ts": "2024-03-01T00:00:00Z", "value": 4.0},
                                               {"ts": "2024-03-01T00:15:00Z", "value": 4.5},
                                               {"ts": "2024-03-01T00:30:00Z", "value": None}]
                assert http.get("/healthz").json() == {"status": "ok"}
            assert worker.poll() is None, worker_log_path.read_text()
        finally:
            server_code = stop(server)
            worker_code = stop(worker)
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught, which `serve` turns into
    # an orderly exit (128 + SIGTERM) so it can stop the workers it started.
    assert server_code in (0, 128 + signal.SIGTERM), log_path.read_text()
    assert "Application shutdown complete" in log_path.read_text()
    assert worker_code == 0, worker_log_path.read_text()
    assert not (tmp_path / "api_key").exists()  # PostgreSQL: keys come from `keys create` only
