"""In multiprocess mode, /metrics adds up what every process (API, workers) counted."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
from app.observability.metrics import JOBS_FINISHED, TRAINING_SECONDS
JOBS_FINISHED.labels("succeeded").inc()
TRAINING_SECONDS.labels("gru").observe(12.0)
"""

API = """
from fastapi.testclient import TestClient
from app.config import Settings
from app.main import create_app
from app.observability.metrics import JOBS_FINISHED
JOBS_FINISHED.labels("succeeded").inc()
app = create_app(Settings(database_url="sqlite:///{db}"))
print(TestClient(app).get("/metrics").text)
"""


def run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout


def test_counts_of_worker_processes_reach_the_apis_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    run(WORKER, env)
    text = run(API.format(db=tmp_path / "none.db"), env)
    assert 'statecast_jobs_finished_total{status="succeeded"} 2.0' in text
    assert 'statecast_training_duration_seconds_count{cell="gru"} 1.0' in text
