"""Dependencies of the routes, each as an Annotated alias."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import tenants
from app.db.tables import Tenant
from app.errors import Unauthorized
from app.streams.model_cache import ForecasterCache

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sc_...`")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_session(factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
                ) -> Iterator[Session]:
    """A session for the route; routes commit explicitly, so nothing is acknowledged unsaved."""
    with factory() as session:
        yield session


def get_forecasters(request: Request) -> ForecasterCache:
    cache: ForecasterCache = request.app.state.forecasters
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
ForecastersDep = Annotated[ForecasterCache, Depends(get_forecasters)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_tenant(factory: SessionFactoryDep,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
               ) -> Tenant:
    """The key's tenant, looked up in a session of its own so the route's starts untouched."""
    if credentials is None:
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`")
    with factory() as session:
        tenant = tenants.tenant_for_key(session=session, key=credentials.credentials)
    if tenant is None:
        raise Unauthorized("The API key is not valid")
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
