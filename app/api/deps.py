"""Dependencies of the routes, each as an Annotated alias."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api import auth
from app.api.auth import KeyCache
from app.api.quotas import RateLimiter
from app.config import Settings
from app.db import tenants
from app.db.tables import Tenant
from app.db.tenants import Caller
from app.errors import Unauthorized
from app.streams.model_cache import ForecasterCache
from app.streams.seasonal_fits import FitCache

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sc_...`")


# The cheap dependencies are `async def`: a plain `def` dependency costs a thread-pool hop.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


async def get_session(factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
                      ) -> AsyncIterator[Session]:
    """A session for the route; routes commit explicitly, so nothing is acknowledged unsaved.

    `async` so that opening and closing it costs no thread hop: a session connects lazily,
    inside the route, and closing a committed one only hands its connection back to the pool.
    """
    with factory() as session:
        yield session


async def get_forecasters(request: Request) -> ForecasterCache:
    cache: ForecasterCache = request.app.state.forecasters
    return cache


async def get_seasonal_fits(request: Request) -> FitCache:
    fits: FitCache = request.app.state.seasonal_fits
    return fits


@dataclass(frozen=True, slots=True)
class Services:
    """What a route that steps streams reads from the app, in one dependency.

    FastAPI solves each dependency by walking its own sub-dependencies, parameters and cache
    key; the stream post, the hottest route, spent more on resolving three of them than on its
    SQL (docs/benchmarks.md, "Streams and forecasts").
    """

    settings: Settings
    forecasters: ForecasterCache
    fits: FitCache


async def get_services(request: Request) -> Services:
    state = request.app.state
    return Services(settings=state.settings, forecasters=state.forecasters,
                    fits=state.seasonal_fits)


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ForecastersDep = Annotated[ForecasterCache, Depends(get_forecasters)]
SeasonalFitsDep = Annotated[FitCache, Depends(get_seasonal_fits)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
# FastAPI closes it only once the answer is validated, even with scope="function";
# `app.api.session_release.SessionReleasingRoute` closes a sync route's session in the route's
# own thread as it returns, so no request holds a pooled connection while it waits for a thread.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_caller(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                     ) -> Caller:
    """The key's tenant and terms, looked up in a session of its own so the route's starts
    untouched, and remembered (app/api/auth.py); held to the key's expiry and scope and to the
    tenant's request rate.

    The session factory is read from the app, not asked for as a dependency: every `/v1`
    request authenticates, and each dependency costs FastAPI a resolution even when cached.
    """
    if credentials is None:
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`")
    keys: KeyCache = request.app.state.keys
    key_hash = tenants.hash_key(credentials.credentials)
    caller = keys.cached(key_hash)
    if caller is None:
        factory: sessionmaker[Session] = request.app.state.session_factory
        caller = await run_in_threadpool(auth.lookup, factory, credentials.credentials)
        if caller is None:
            raise Unauthorized("The API key is not valid")
        keys.remember(key_hash, caller)
        keys.note_use(factory, caller)
    auth.check_terms(caller, request.method)
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(caller.tenant.id)
    return caller


async def get_tenant(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                     ) -> Tenant:
    """The key's tenant: `get_caller` without a dependency of its own in between (the hot
    routes pay one resolution less)."""
    return (await get_caller(request, credentials)).tenant


CallerDep = Annotated[Caller, Depends(get_caller)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]
