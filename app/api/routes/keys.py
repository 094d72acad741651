"""API keys of the caller's tenant: list, create, revoke. A key manages its own tenant's keys."""

from fastapi import APIRouter, Request, Response

from app.api.auth import KeyCache
from app.api.deps import CallerDep, SessionDep
from app.api.params import IdPath
from app.api.schemas import KeyCreate, KeyCreated, KeyPublic, Page
from app.api.session_release import SessionReleasingRoute
from app.db import tenants
from app.db.engine import lock_for_write

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=SessionReleasingRoute)


@router.get("", response_model=Page[KeyPublic], summary="List the tenant's keys")
def list_keys(caller: CallerDep, session: SessionDep) -> Page[KeyPublic]:
    rows = tenants.list_keys(session=session, tenant_id=caller.tenant.id)
    data = [KeyPublic.model_validate(row).model_copy(update={"current": row.id == caller.key_id})
            for row in rows]
    return Page[KeyPublic](data=data, count=len(data))


@router.post("", status_code=201, response_model=KeyCreated,
             summary="Create a key (shown once, in this answer)")
def create_key(body: KeyCreate, caller: CallerDep, session: SessionDep) -> KeyCreated:
    row, key = tenants.add_key(session=session, tenant_id=caller.tenant.id, name=body.name,
                               scope=body.scope, expires_at=body.expires_at)
    session.commit()
    return KeyCreated(**KeyPublic.model_validate(row).model_dump(), key=key)


@router.delete("/{key_id}", status_code=204,
               summary="Revoke a key: refused at once here, within 5 s on other replicas")
def revoke_key(key_id: IdPath, request: Request, caller: CallerDep,
               session: SessionDep) -> Response:
    lock_for_write(session)
    tenants.revoke_key(session=session, tenant_id=caller.tenant.id, key_id=key_id)
    session.commit()
    keys: KeyCache = request.app.state.keys
    keys.forget_key(key_id)
    return Response(status_code=204)
