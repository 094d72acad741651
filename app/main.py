"""The ASGI application: wiring only, no logic."""

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import openapi, problems
from app.api.auth import KeyCache
from app.api.limits import BodyLimitMiddleware
from app.api.prefixed import prefixed
from app.api.quotas import RateLimiter
from app.api.routes import (
    docs,
    events,
    forecast_models,
    forecasts,
    health,
    jobs,
    keys,
    series,
    streams,
)
from app.config import Settings, get_settings
from app.db.engine import create_db_engine, create_session_factory
from app.observability.middleware import MetricsMiddleware
from app.observability.request_id import RequestIdMiddleware
from app.observability.routes import router as metrics_router
from app.streams.model_cache import ForecasterCache
from app.streams.seasonal_fits import FitCache
from app.web.routes import router as web_router

DESCRIPTION = """
Forecast time series (electricity consumption first) with recurrent neural networks.

Every `/v1` route needs `Authorization: Bearer <key>`. Errors are `application/problem+json`
with an `errors` list naming each field and the value received.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_db_engine(settings.database_url,
                                  lock_timeout_s=settings.database_lock_timeout_s)
        app.state.engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.forecasters = ForecasterCache(settings.model_dir, settings.model_cache_size)
        app.state.seasonal_fits = FitCache(settings.seasonal_fit_cache_bytes)
        app.state.keys = KeyCache()
        # What is loaded by now lives as long as the process: keep it out of every collection
        # (a full one walked it all and made a fleet's bulk post a third slower).
        gc.freeze()
        yield
        app.state.keys.close()
        engine.dispose()

    # /docs and /redoc come from the docs router, which serves their files itself (no CDN).
    app = FastAPI(title="statecast", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.tenant_requests_per_s,
                                         burst=max(1.0, 2 * settings.tenant_requests_per_s))
    app.state.large_uploads = threading.BoundedSemaphore(settings.max_large_uploads)
    problems.install(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_upload_bytes,
                       body_timeout_s=settings.body_timeout_s)
    app.add_middleware(problems.CatchAllMiddleware)
    app.include_router(health.router)
    app.include_router(prefixed(series.router))
    app.include_router(prefixed(forecast_models.router))
    app.include_router(prefixed(jobs.router))
    app.include_router(forecasts.router)
    app.include_router(prefixed(streams.router))
    app.include_router(prefixed(events.router))
    app.include_router(prefixed(keys.router))
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(metrics_router)
    app.include_router(docs.router)
    app.include_router(web_router)
    openapi.install(app, max_horizon_steps=settings.max_forecast_horizon_steps)
    return app
