"""The job page follows `GET /v1/jobs/{id}/events` (Server-Sent Events) when the API has it.

The API does not serve job events yet, so this app gets a stand-in route that streams a job's
progress the way such an endpoint would; the rest of the app is the real one.
"""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Request
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from app.config import Settings
from app.main import create_app
from tests.api.helpers import fill_series
from tests.server import free_port
from tests.web.browser import chromium_page, require_chromium

EPOCHS = 3
EVENT_GAP_S = 0.3


def epoch_progress(epoch: int) -> dict[str, Any]:
    return {"phase": "training", "epoch": epoch, "epochs": EPOCHS, "loss": 1.0 / epoch,
            "val_loss": 1.2 / epoch, "elapsed_s": float(epoch), "eta_s": float(EPOCHS - epoch)}


# What the stand-in streams by default: three epochs, the last one succeeded.
EPOCH_SCRIPT = [("succeeded" if epoch == EPOCHS else "running", epoch_progress(epoch))
                for epoch in range(1, EPOCHS + 1)]
# A job whose worker is still loading TensorFlow: the stream stays open after this one event.
STARTING_SCRIPT = [("running", {"phase": "starting", "epoch": 0})]


def progress_event(job: dict[str, Any], status: str, progress: dict[str, Any]) -> str:
    body = json.dumps({**job, "status": status, "progress": progress})
    # CRLF line ends, a comment and an event name: what a server may send, all to be tolerated.
    return f": keep-alive\r\nevent: progress\r\ndata: {body}\r\n\r\n"


@pytest.fixture
def script() -> list[tuple[str, dict[str, Any]]]:
    """(status, progress) of each event the stand-in sends; a test may replace the contents."""
    return list(EPOCH_SCRIPT)


@pytest.fixture
def served(settings: Settings, auth: dict[str, str],
           script: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The app with a stand-in events route, served by uvicorn in a thread; and a queued job."""
    require_chromium()
    app = create_app(settings)
    jobs: dict[int, dict[str, Any]] = {}

    async def job_events(job_id: int, request: Request) -> StreamingResponse:
        if request.headers.get("authorization") != auth["Authorization"]:
            return StreamingResponse(iter([]), status_code=401)

        async def events() -> AsyncIterator[str]:
            for status, progress in script:
                await asyncio.sleep(EVENT_GAP_S)
                yield progress_event(jobs[job_id], status, progress)
            if script[-1][0] in ("queued", "running"):  # held open, as while a real job waits
                while not await request.is_disconnected():
                    await asyncio.sleep(EVENT_GAP_S)

        return StreamingResponse(events(), media_type="text/event-stream")

    # First in line, so it answers even once the real route exists.
    app.router.routes.insert(0, APIRoute("/v1/jobs/{job_id}/events", job_events))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline_s = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline_s:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        series = httpx.post(f"{url}/v1/series", headers=auth,
                            json={"name": "s", "freq": "30min"}).json()
        with httpx.Client(base_url=url) as http:
            fill_series(http, auth, series["id"], freq="30min")
        accepted = httpx.post(f"{url}/v1/models", headers=auth,
                              json={"series_ids": [series["id"]], "spec": {"units": 4}})
        job = accepted.json()["job"]
        jobs[job["id"]] = job
        yield url, job
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_progress_and_loss_curve_follow_the_event_stream(served: tuple[str, dict[str, Any]],
                                                         auth: dict[str, str]) -> None:
    url, job = served
    polls: list[str] = []
    with chromium_page() as page:
        page.on("request", lambda r: polls.append(r.url)
                if r.url.endswith(f"/v1/jobs/{job['id']}") else None)
        page.goto(f"{url}/#/jobs/{job['id']}")
        page.fill("#key-input", auth["Authorization"].removeprefix("Bearer "))
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#job-live >> text=live (events)")
        page.wait_for_selector("#job-progress[data-percent='33']")
        page.wait_for_selector("#job-progress[data-percent='100']")
        losses = page.evaluate("document.getElementById('loss-chart').data.map(t => t.y)")
        assert losses == [[1.0 / e for e in (1, 2, 3)], [1.2 / e for e in (1, 2, 3)]]
        assert "succeeded" in page.inner_text("#job-status")
        page.wait_for_selector("#job-result")
    assert len(polls) == 1  # the first read only: the events carried the rest, no polling


def test_a_job_loading_tensorflow_shows_it_is_starting(served: tuple[str, dict[str, Any]],
                                                      script: list[tuple[str, dict[str, Any]]],
                                                      auth: dict[str, str]) -> None:
    """Before its first epoch a job says what it is doing, and draws no empty loss chart."""
    script[:] = STARTING_SCRIPT
    url, job = served
    with chromium_page() as page:
        page.goto(f"{url}/#/jobs/{job['id']}")
        page.fill("#key-input", auth["Authorization"].removeprefix("Bearer "))
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#job-status >> text=starting")
        assert "loading TensorFlow" in page.inner_text("#job-status")
        assert "loading TensorFlow" in page.inner_text("#loss-empty")
        assert not page.is_visible("#loss-chart")
        assert page.query_selector("#loss-chart .main-svg") is None


def test_a_queued_job_says_it_waits_for_a_worker(served: tuple[str, dict[str, Any]],
                                                 script: list[tuple[str, dict[str, Any]]],
                                                 auth: dict[str, str]) -> None:
    script[:] = [("queued", {})]
    url, job = served
    with chromium_page() as page:
        page.goto(f"{url}/#/jobs/{job['id']}")
        page.fill("#key-input", auth["Authorization"].removeprefix("Bearer "))
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#loss-empty >> text=Waiting for a worker")
        assert not page.is_visible("#loss-chart")
