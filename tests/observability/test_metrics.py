"""`GET /metrics`: requests counted by route template and status, with latency histograms."""

import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.observability import metrics
from app.observability.route_labels import UNMATCHED_ROUTE
from tests.api.helpers import fill_series


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_route_template_and_status(client: TestClient,
                                                           auth: dict[str, str]) -> None:
    template = "/v1/series/{series_id}"
    before_404 = sample("statecast_http_requests_total", method="GET", route=template, status="404")
    before_count = sample("statecast_http_request_duration_seconds_count", method="GET",
                          route=template)
    for series_id in (101, 102, 103):
        assert client.get(f"/v1/series/{series_id}", headers=auth).status_code == 404
    assert sample("statecast_http_requests_total", method="GET", route=template,
                  status="404") == before_404 + 3
    assert sample("statecast_http_request_duration_seconds_count", method="GET",
                  route=template) == before_count + 3
    # No label per id: the raw path never becomes a label value.
    assert "/v1/series/101" not in client.get("/metrics").text


def test_unknown_paths_share_one_label(client: TestClient) -> None:
    before = sample("statecast_http_requests_total", method="GET", route=UNMATCHED_ROUTE,
                    status="404")
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    assert sample("statecast_http_requests_total", method="GET", route=UNMATCHED_ROUTE,
                  status="404") == before + 2


def test_metrics_page_is_prometheus_text_with_the_shared_metrics(client: TestClient) -> None:
    metrics.STREAM_READINGS.inc(3)
    metrics.MODEL_CACHE_HITS.inc()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    for name in ("statecast_http_requests_total", "statecast_http_request_duration_seconds_bucket",
                 "statecast_stream_readings_applied_total", "statecast_model_cache_hits_total",
                 "statecast_model_cache_misses_total", "statecast_queue_depth",
                 "statecast_training_duration_seconds", "# TYPE statecast_jobs gauge"):
        assert name in text, name
    assert "statecast_queue_depth 0.0" in text  # read from the (empty) jobs table
    # Scrapes are not counted as requests, or they would swamp the figures.
    assert 'route="/metrics"' not in text


def test_a_failing_route_counts_as_500(client: TestClient) -> None:
    app = client.app

    @app.get("/_boom")  # type: ignore[attr-defined]
    def boom() -> None:
        raise RuntimeError("boom")

    before = sample("statecast_http_requests_total", method="GET", route="/_boom", status="500")
    failing = TestClient(app, raise_server_exceptions=False)
    assert failing.get("/_boom").status_code == 500
    assert sample("statecast_http_requests_total", method="GET", route="/_boom",
                  status="500") == before + 1


def test_openmetrics_when_the_scraper_asks_for_it(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; "
                                                         "version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_job_gauges_are_read_from_the_database_at_scrape_time(client: TestClient,
                                                              auth: dict[str, str]) -> None:
    series = client.post("/v1/series", json={"name": "s", "freq": "30min"}, headers=auth).json()
    fill_series(client, auth, series["id"], freq="30min")
    for _ in range(2):
        accepted = client.post("/v1/models", json={"series_ids": [series["id"]],
                                                   "spec": {"units": 4}}, headers=auth)
        assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job"]["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200
    text = client.get("/metrics").text
    assert 'statecast_jobs{status="queued"} 1.0' in text
    assert 'statecast_jobs{status="cancelled"} 1.0' in text
    assert 'statecast_jobs{status="running"} 0.0' in text
    assert "statecast_queue_depth 1.0" in text


def test_an_unreachable_database_leaves_the_gauges_and_logs_why(
        caplog: pytest.LogCaptureFixture) -> None:
    from app.observability.queue import refresh_job_gauges

    metrics.QUEUE_DEPTH.set(7)

    def broken_factory() -> None:
        raise OSError("connection refused")

    logger = logging.getLogger("statecast")
    propagate, logger.propagate = logger.propagate, True
    try:
        with caplog.at_level(logging.WARNING, logger="statecast.metrics"):
            refresh_job_gauges(broken_factory, stale_after_s=10)  # type: ignore[arg-type]
    finally:
        logger.propagate = propagate
    assert REGISTRY.get_sample_value("statecast_queue_depth") == 7.0
    assert any(r.getMessage() == "job gauges not refreshed" and "refused" in r.error  # type: ignore[attr-defined]
               for r in caplog.records)
