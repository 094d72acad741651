"""docker-compose.yml for real: build the image, bring the stack up, and follow a user's path.

Needs a Docker engine with Compose v2 (`bash ../shared/tools/docker-engine/up.sh` starts one on
these machines and prints the DOCKER_CONFIG to export). Skipped when none answers, except in CI,
where it fails instead: CI must exercise the real deployment. About four minutes once the base
images exist; `pytest -m "not deploy"` leaves it out.
"""

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import free_port

pytestmark = pytest.mark.deploy

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# CI lays shared/ beside the clone; so do the developers' machines.
TAYLOR_CSV = REPO_ROOT.parent / "shared" / "data" / "taylor_ew_halfhourly.csv"
TAYLOR_ROWS = 4032
# Where ../shared/tools/docker-engine/up.sh keeps the Compose v2 plugin, when DOCKER_CONFIG is unset.
ENGINE_CONFIG = Path("/var/tmp/docker-engine/config")
BUILD_TIMEOUT_S = 1800.0
COMMAND_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 180.0
TRAIN_TIMEOUT_S = 400.0
POLL_S = 1.0
IMAGE = "statecast:latest"  # as docker-compose.yml names it
FIRST_STREAM_TS = "2000-08-28T00:00:00Z"


def compose_env() -> dict[str, str]:
    env = dict(os.environ)
    if "DOCKER_CONFIG" not in env and ENGINE_CONFIG.is_dir():
        env["DOCKER_CONFIG"] = str(ENGINE_CONFIG)
    return env


def engine_problem() -> str | None:
    """Why the test cannot run here, or None when a Docker engine with Compose v2 answers."""
    env = compose_env()
    for argv, needs in ((["docker", "info", "--format", "{{.ServerVersion}}"], "a Docker engine"),
                        (["docker", "compose", "version", "--short"], "Compose v2")):
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{needs} does not answer ({exc})"
        if done.returncode != 0:
            return f"{needs} does not answer: {done.stderr.strip()[:300]}"
    return None


def image_id(name: str, env: dict[str, str]) -> str | None:
    done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", name], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


class Stack:
    """One compose project of the repository's docker-compose.yml, on its own port and volumes."""

    def __init__(self) -> None:
        self.project = f"sc-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**compose_env(), "API_PUBLISHED_PORT": str(self.port),
                    "POSTGRES_PASSWORD": uuid.uuid4().hex, "STATECAST_LOG_LEVEL": "info"}

    def compose(self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", self.project, *args]
        done = subprocess.run(argv, env=self.env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"`docker compose {' '.join(args)}` exited {done.returncode}:\n"
                        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{self.logs()}")
        return done

    def logs(self) -> str:
        argv = ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", self.project, "logs",
                "--no-color", "--tail", "60"]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60,
                              check=False)
        return done.stdout[-6000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(POLL_S)
        pytest.fail(f"the api was not ready after {READY_TIMEOUT_S} s: {last}\n{self.logs()}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    problem = engine_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI runs ../shared/tools/docker-engine/up.sh first")
        pytest.skip(f"{problem} (bash ../shared/tools/docker-engine/up.sh starts one)")
    if not TAYLOR_CSV.is_file():
        pytest.fail(f"{TAYLOR_CSV} is missing: shared/ must lie beside the repository")
    stack = Stack()
    try:
        before = image_id(IMAGE, stack.env)
        stack.compose("build", timeout_s=BUILD_TIMEOUT_S)
        if before and before != image_id(IMAGE, stack.env):
            # The image this build replaced is left untagged (2 GB); remove it unless in use.
            subprocess.run(["docker", "image", "rm", before], env=stack.env, capture_output=True,
                           timeout=COMMAND_TIMEOUT_S, check=False)
        stack.compose("up", "-d")
        stack.wait_ready()
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)


def api(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"},
                        timeout=60.0)


def wait_for_job(http: httpx.Client, job_id: int, stack: Stack) -> dict[str, Any]:
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(POLL_S)
    pytest.fail(f"job {job_id} did not end within {TRAIN_TIMEOUT_S} s: {job}\n{stack.logs()}")


def stream_state(http: httpx.Client, stream_id: str) -> dict[str, Any]:
    """What a stream's row holds that a restart must not change."""
    body: dict[str, Any] = http.get(f"/v1/streams/{stream_id}").json()
    return {k: body[k] for k in ("model_id", "last_ts", "readings_applied", "next_forecast",
                                 "accuracy")}


def test_a_users_path_through_the_compose_stack(stack: Stack) -> None:
    key = stack.compose("exec", "-T", "api", "statecast", "keys", "create", "--tenant",
                        "acme").stdout.strip()
    assert key.startswith("sc_"), key
    with api(stack, key) as http:
        created = http.post("/v1/series", json={"name": "ew-demand", "freq": "30min",
                                                "unit": "MW"})
        assert created.status_code == 201, created.text
        series_id = created.json()["id"]
        upload = http.post(f"/v1/series/{series_id}/readings", content=TAYLOR_CSV.read_bytes(),
                           headers={"Content-Type": "text/csv"})
        assert upload.status_code == 200, upload.text
        assert upload.json()["inserted"] == TAYLOR_ROWS

        # Training happens in the worker container; the api reads its files from the volume.
        accepted = http.post("/v1/models", json={"series_ids": [series_id],
                                                 "spec": {"epochs": 2, "units": 4}})
        assert accepted.status_code == 202, accepted.text
        job = wait_for_job(http, accepted.json()["job"]["id"], stack)
        assert job["status"] == "succeeded", f"{job}\n{stack.logs()}"
        forecast = http.get(f"/v1/series/{series_id}/forecast", params={"horizon": 4})
        assert forecast.status_code == 200, forecast.text
        points = forecast.json()["points"]
        assert [p["ts"] for p in points][:1] == [FIRST_STREAM_TS] and len(points) == 4
        assert all(p["lower_95"] <= p["mean"] <= p["upper_95"] for p in points)

        opened = http.post("/v1/streams", json={"series_id": series_id, "stream_id": "meter-1"})
        assert opened.status_code == 201, opened.text
        posted = http.post("/v1/streams/meter-1/readings",
                           json={"readings": [{"ts": FIRST_STREAM_TS, "value": 23100}]})
        assert posted.status_code == 200, posted.text
        assert posted.json()["applied"] == [FIRST_STREAM_TS]
        before = stream_state(http, "meter-1")
        assert before["readings_applied"] == 1 and before["next_forecast"] is not None

    # Quiet logs: probes below info, no TensorFlow start-up notices; the worker trained the job.
    logs = stack.compose("logs", "--no-color", "api", "worker").stdout
    assert "/healthz" not in logs and "oneDNN" not in logs
    events = [json.loads(line.split("|", 1)[1]) for line in logs.splitlines()
              if "|" in line and line.split("|", 1)[1].strip().startswith("{")]
    assert any(e.get("action") == "end_job" and e.get("status") == "succeeded"
               and e.get("job_id") == job["id"] for e in events), logs[-3000:]

    stack.compose("restart", "api")
    stack.wait_ready()
    with api(stack, key) as http:
        assert stream_state(http, "meter-1") == before

    stack.compose("down")  # containers go, volumes stay
    stack.compose("up", "-d")
    stack.wait_ready()
    with api(stack, key) as http:
        assert stream_state(http, "meter-1") == before
        detail = http.get(f"/v1/series/{series_id}").json()
        assert detail["readings"] == TAYLOR_ROWS + 1  # the upload and the stream's reading
        again = http.get(f"/v1/series/{series_id}/forecast", params={"horizon": 4})
        assert again.status_code == 200, again.text

    # The volume holds the model's files and nothing the image carried in.
    listing = stack.compose("exec", "-T", "api", "ls", "-A", "/srv/statecast/models").stdout
    assert listing.split() == [str(job["model_id"])]
