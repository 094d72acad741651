"""Make docs/screenshot-series.png: the dashboard's series page with a real forecast band.

Starts `statecast serve` (with one worker) on a scratch SQLite database, uploads the shared
electricity data by path, trains a small GRU, and photographs the series page in Chromium.

    python scripts/screenshot.py [--data PATH] [--out docs/screenshot-series.png]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "taylor_ew_halfhourly.csv"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# The default spec, as a user who picks nothing gets it (trains in well under a minute).
SPEC: dict[str, object] = {}
START_TIMEOUT_S = 60.0
TRAIN_TIMEOUT_S = 900.0
POLL_S = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline_s = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline_s:
        if process.poll() is not None:
            raise SystemExit(f"statecast serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"statecast serve did not answer within {START_TIMEOUT_S} s")


def train(api: httpx.Client, series_id: int) -> int:
    """Train a model on the series and wait for it; its id."""
    accepted = api.post("/v1/models", json={"series_ids": [series_id], "spec": SPEC})
    accepted.raise_for_status()
    job_id = accepted.json()["job"]["id"]
    deadline_s = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline_s:
        job = api.get(f"/v1/jobs/{job_id}").json()
        progress = job.get("progress") or {}
        print(f"\rjob {job_id}: {job['status']} epoch {progress.get('epoch', 0)}/"
              f"{progress.get('epochs', '?')}", end="", file=sys.stderr, flush=True)
        if job["status"] == "succeeded":
            print(file=sys.stderr)
            model_id: int = job["model_id"]
            return model_id
        if job["status"] in ("failed", "cancelled"):
            sys.exit(f"\ntraining {job['status']}: {job.get('error')}")
        time.sleep(POLL_S)
    sys.exit("\ntraining did not finish in time")


def photograph(url: str, key: str, series_id: int, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
        page.goto(f"{url}/#/series/{series_id}")
        page.fill("#key-input", key)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#series-chart[data-forecast-points='96']", timeout=30_000)
        page.wait_for_selector("#models-table")
        page.wait_for_timeout(500)  # let plotly finish its transition
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="timestamp,demand_mw CSV")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot-series.png")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="statecast-screenshot-") as scratch:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        key_file = Path(scratch) / "api_key"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
               "STATECAST_DATABASE_URL": f"sqlite:///{scratch}/statecast.db",
               "STATECAST_MODEL_DIR": f"{scratch}/models", "STATECAST_KEY_FILE": str(key_file),
               "STATECAST_PORT": str(port), "STATECAST_EMBEDDED_WORKERS": "1",
               "STATECAST_WORKER_POLL_INTERVAL_S": "0.2", "STATECAST_LOG_LEVEL": "warning"}
        log = (Path(scratch) / "serve.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, server)
            key = key_file.read_text().strip()
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                              timeout=120.0) as api:
                series = api.post("/v1/series", json={
                    "name": "taylor-ew", "freq": "30min", "unit": "MW",
                    "description": "England and Wales electricity demand, half-hourly, 2000"})
                series.raise_for_status()
                series_id = series.json()["id"]
                api.post(f"/v1/series/{series_id}/readings", content=args.data.read_bytes(),
                         headers={"Content-Type": "text/csv"}).raise_for_status()
                train(api, series_id)
            photograph(url, key, series_id, args.out)
        except BaseException:
            log.flush()
            print((Path(scratch) / "serve.log").read_text(errors="replace")[-3000:],
                  file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
