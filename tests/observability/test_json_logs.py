"""With STATECAST_LOG_FORMAT=json every line a process writes to stderr is one JSON object.

uvicorn's start-up lines were plain text, and a training child's traceback was printed as
plain text into the JSON log (multiprocessing prints what escapes a child's target).
"""

import json
import multiprocessing
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.db.jobs import ClaimedJob
from app.worker.training_task import RETRY_EXIT_CODE, run_training_job
from tests.server import ServerProcess


def json_lines(text: str) -> list[dict[str, object]]:
    """Every non-empty line as JSON; fails naming the first line that is not."""
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}\nwhole log:\n{text}")
    return parsed


def test_every_line_of_statecast_serve_is_json(settings: Settings, tmp_path: Path,
                                               auth: dict[str, str]) -> None:
    log = tmp_path / "serve.log"
    server = ServerProcess(settings, log, workers=1, STATECAST_LOG_FORMAT="json",
                           STATECAST_LOG_LEVEL="info")
    try:
        assert httpx.get(f"{server.url}/v1/series", headers=auth).status_code == 200
        assert httpx.get(f"{server.url}/v1/series", headers={}).status_code == 401
    finally:
        server.stop()
    records = json_lines(log.read_text())
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers, loggers  # "Uvicorn running on ...", "Started server..."
    assert any("serving on" in str(r["message"]) for r in records)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_training_child_that_fails_logs_its_traceback_as_json(
        settings: Settings, capfd: pytest.CaptureFixture[str]) -> None:
    """Its database unreachable, the child exits for a retry, its traceback in a JSON line."""
    unreachable = settings.model_copy(update={
        "database_url": "postgresql+psycopg://postgres@127.0.0.1:9/none", "log_format": "json"})
    job = ClaimedJob(id=1, model_id=1, tenant_id=1, attempt=1, max_attempts=3)
    child = multiprocessing.get_context("spawn").Process(
        target=run_training_job, args=(unreachable.model_dump(mode="json"), job))
    child.start()
    child.join(120)
    assert child.exitcode == RETRY_EXIT_CODE
    records = json_lines(capfd.readouterr().err)
    [failure] = [r for r in records if r.get("action") == "job_db_error"]
    assert "Traceback" in str(failure["exception"])
