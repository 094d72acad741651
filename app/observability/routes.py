"""`GET /metrics`: every metric of the process in Prometheus' text format."""

import os

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from app.observability.queue import refresh_job_gauges

router = APIRouter(tags=["observability"])

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _registry() -> CollectorRegistry:
    """The process's registry, or, in multiprocess mode, one that merges every process' files."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    factory = getattr(request.app.state, "session_factory", None)
    if factory is not None:
        refresh_job_gauges(factory,
                           stale_after_s=request.app.state.settings.worker_stale_after_s)
    # The scraper's Accept header picks the classic text format or OpenMetrics.
    encode, media_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(_registry()), media_type=media_type)
