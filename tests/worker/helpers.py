"""Driving a real worker from a test: claim, train in a child process, report."""

import functools
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.worker.runner import Worker

TINY_SPEC = {"units": 4, "epochs": 2, "patience": 1, "batch_size": 16}


def hourly_csv(days: int = 20, start: str = "2024-01-01", seed: int = 0) -> bytes:
    """A daily-seasonal hourly series with noise, as CSV."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=days * 24, freq="h")
    values = 100 + 10 * np.sin(2 * np.pi * np.arange(len(stamps)) / 24) + rng.normal(0, 1,
                                                                                       len(stamps))
    lines = ["ts,value"] + [f"{t:%Y-%m-%d %H:%M},{v:.4f}" for t, v in zip(stamps, values,
                                                                            strict=True)]
    return ("\n".join(lines) + "\n").encode()


def series_with_data(client: TestClient, auth: dict[str, str], name: str = "load",
                     days: int = 20) -> int:
    sid = client.post("/v1/series", json={"name": name, "freq": "h"}, headers=auth).json()["id"]
    response = client.post(f"/v1/series/{sid}/readings", content=hourly_csv(days),
                           headers={**auth, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    return int(sid)


def train(client: TestClient, auth: dict[str, str], sid: int, **spec: Any) -> dict[str, Any]:
    response = client.post("/v1/models", json={"series_ids": [sid],
                                               "spec": {**TINY_SPEC, **spec}}, headers=auth)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def work_until(worker: Worker, done: Callable[[], bool], timeout_s: float = 120) -> None:
    """Run the worker's loop in this thread until `done()` (or fail after the timeout)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the worker did not finish in time"
        worker.tick()
        time.sleep(0.1)


def job_status(client: TestClient, auth: dict[str, str], job_id: int) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    return body


@functools.cache
def preloaded_context() -> BaseContext:
    """A fork server that has imported the training task and TensorFlow once for the session.

    The worker spawns each job's child, a fresh interpreter that imports TensorFlow again (about
    8 CPU-seconds); forked from this server the child starts with it imported. The child still
    gets its job pickled and runs it in a process of its own, so what the tests check about the
    job holds; tests of how the worker starts and loses children pass `spawn=True`.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["app.worker.training_task", "app.ml.training"])
    return context


def fast_worker(settings: Settings, *, spawn: bool = False, **kwargs: Any) -> Worker:
    """A worker polling every 0.1 s; its jobs' children fork from `preloaded_context()` unless
    `spawn` keeps the production start method."""
    settings.worker_poll_interval_s = 0.1
    worker = Worker(settings, **kwargs)
    if not spawn:
        worker.context = preloaded_context()
    return worker


def trained(client: TestClient, auth: dict[str, str], settings: Settings, sid: int,
            **spec: Any) -> dict[str, Any]:
    """Train through the queue, with a worker in this thread; the model once its job succeeded."""
    accepted = train(client, auth, sid, **spec)
    worker = fast_worker(settings)
    work_until(worker, lambda: job_status(client, auth, accepted["job"]["id"])["status"] in
               ("succeeded", "failed"))
    worker.shutdown()
    assert job_status(client, auth, accepted["job"]["id"])["status"] == "succeeded"
    model: dict[str, Any] = client.get(f"/v1/models/{accepted['model']['id']}",
                                       headers=auth).json()
    return model
