"""Every request has an id, answered in X-Request-ID and stamped on every log line it causes."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.logs import JsonFormatter
from app.main import create_app
from app.observability.context import accept_or_new_request_id, current_request_id


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON lines written by the `statecast` loggers during the test."""
    logger = logging.getLogger("statecast")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield stream
    logger.handlers[:], logger.level, logger.propagate = saved


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def logging_client(settings: Settings, log_lines: io.StringIO) -> Iterator[TestClient]:
    """An app whose routes include one that logs from a worker thread, as sync routes run."""
    app = create_app(settings)

    @app.get("/_log")
    def log_twice() -> dict[str, str | None]:
        logging.getLogger("statecast.test").info("first")
        logging.getLogger("statecast.test").warning("second", extra={"action": "test"})
        return {"request_id": current_request_id()}

    with TestClient(app) as test_client:
        yield test_client


def test_incoming_request_id_is_kept_answered_and_on_every_line(
        logging_client: TestClient, log_lines: io.StringIO) -> None:
    response = logging_client.get("/_log", headers={"X-Request-ID": "req-42.a:b"})
    assert response.headers["x-request-id"] == "req-42.a:b"
    assert response.json() == {"request_id": "req-42.a:b"}
    records = [r for r in lines(log_lines) if r.get("request_id") == "req-42.a:b"]
    assert [r["message"] for r in records] == ["first", "second", "GET /_log 200"]
    access = records[-1]
    assert access["logger"] == "statecast.access"
    assert access["route"] == "/_log" and access["status"] == 200
    assert isinstance(access["duration_ms"], float)


def test_each_request_gets_its_own_fresh_id(logging_client: TestClient,
                                            log_lines: io.StringIO) -> None:
    first = logging_client.get("/_log").headers["x-request-id"]
    second = logging_client.get("/_log").headers["x-request-id"]
    assert first != second and len(first) == 32
    by_id: dict[object, list[object]] = {}
    for record in lines(log_lines):
        by_id.setdefault(record.get("request_id"), []).append(record["message"])
    assert by_id[first] == ["first", "second", "GET /_log 200"]
    assert by_id[second] == ["first", "second", "GET /_log 200"]
    assert None not in by_id  # no line of a request without its id


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 129, "quote\"", "new\nline", "é"])
def test_untrusted_request_ids_are_replaced(incoming: str) -> None:
    replaced = accept_or_new_request_id(incoming)
    assert replaced != incoming and len(replaced) == 32


def test_errors_keep_the_request_id(logging_client: TestClient, log_lines: io.StringIO,
                                    auth: dict[str, str]) -> None:
    response = logging_client.get("/v1/series/999", headers={**auth, "X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "lost-1"
    assert any(r.get("request_id") == "lost-1" and r.get("status") == 404
               for r in lines(log_lines))


def test_outside_a_request_there_is_no_id(log_lines: io.StringIO) -> None:
    from app.observability.context import install_request_id_filter

    install_request_id_filter()
    logging.getLogger("statecast.test").info("background")
    assert "request_id" not in lines(log_lines)[-1]
    assert current_request_id() is None


def test_a_text_format_gets_a_placeholder_outside_requests() -> None:
    from app.observability.context import RequestIdFilter, request_id_var

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter(default="-"))
    logger = logging.getLogger("statecast.test.text")
    logger.addHandler(handler)
    try:
        logger.warning("outside")
        token = request_id_var.set("r-1")
        logger.warning("inside")
        request_id_var.reset(token)
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["WARNING [-] outside", "WARNING [r-1] inside"]


def test_health_probes_log_below_info(logging_client: TestClient, log_lines: io.StringIO) -> None:
    """Orchestrators probe /healthz every few seconds; those lines must not flood an info log."""
    assert logging_client.get("/healthz").status_code == 200
    logging_client.get("/_log")
    messages = [r["message"] for r in lines(log_lines)]
    assert "GET /healthz 200" not in messages
    assert "GET /_log 200" in messages
    logging.getLogger("statecast").setLevel(logging.DEBUG)
    logging_client.get("/healthz")
    assert [r["level"] for r in lines(log_lines) if r["message"] == "GET /healthz 200"] == ["debug"]


def test_an_unhandled_error_answers_cleanly_and_logs_the_request_id(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    app = client.app

    @app.get("/_crash")  # type: ignore[attr-defined]
    def crash() -> None:
        raise RuntimeError("boom")

    logger = logging.getLogger("statecast")
    propagate, logger.propagate = logger.propagate, True
    try:
        with caplog.at_level(logging.ERROR, logger="statecast.api"):
            # The default client re-raises what reaches the server: nothing may.
            response = client.get("/_crash", headers={"X-Request-ID": "crash-1"})
    finally:
        logger.propagate = propagate
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"] == "crash-1"
    assert "boom" not in response.text
    assert any(getattr(r, "request_id", None) == "crash-1" and r.exc_info for r in caplog.records)
