"""Tenants and their API keys (only a SHA-256 of each key is stored)."""

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.db.tables import ApiKey, Tenant, utcnow
from app.errors import Conflict, NotFound

KEY_PREFIX = "sc_"
# `last_used_at` is written at most this often per key: a busy key must not write every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyScope(StrEnum):
    """What a key may do: `read` only GETs, `write` everything."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid key authenticates: its tenant and the key's own terms."""

    tenant: Tenant
    key_id: int
    scope: KeyScope
    expires_at: datetime | None
    last_used_at: datetime | None


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, session: Session, tenant_name: str, name: str = "default",
               scope: KeyScope = KeyScope.WRITE,
               expires_at: datetime | None = None) -> tuple[Tenant, str]:
    """A new key for the tenant (created if new); the key is returned once and never stored."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    _, key = add_key(session=session, tenant_id=tenant.id, name=name, scope=scope,
                     expires_at=expires_at)
    return tenant, key


def add_key(*, session: Session, tenant_id: int, name: str, scope: KeyScope,
            expires_at: datetime | None) -> tuple[ApiKey, str]:
    """A new key of an existing tenant, and the key itself (shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:10], name=name,
                 scope=scope, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row, key


def list_keys(*, session: Session, tenant_id: int) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id)
                           .order_by(ApiKey.id)).all()


def revoke_key(*, session: Session, tenant_id: int, key_id: int) -> ApiKey:
    """Delete the tenant's key; refuse the last unexpired write key (the tenant would be
    locked out of managing its keys). Returns the deleted row."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
    if key is None:
        raise NotFound(f"No key with id {key_id}")
    now = utcnow()
    others = session.scalar(select(func.count()).where(
        ApiKey.tenant_id == tenant_id, ApiKey.id != key_id, ApiKey.scope == KeyScope.WRITE,
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))) or 0
    if others == 0:
        raise Conflict(f"Key {key_id} is this tenant's last unexpired write key; create another "
                       "before revoking it", errors=[{"field": "key_id", "value": key_id,
                                                     "message": "the last write key"}])
    session.delete(key)
    session.flush()
    return key


def caller_for_key(*, session: Session, key: str) -> Caller | None:
    """The tenant and terms of `key`, or None if no such key exists (expiry is the caller's
    check, so that a cached key expires on time too)."""
    row = session.execute(
        select(Tenant, ApiKey.id, ApiKey.scope, ApiKey.expires_at, ApiKey.last_used_at)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id).where(ApiKey.key_hash == hash_key(key))
    ).first()
    if row is None:
        return None
    tenant, key_id, scope, expires_at, last_used_at = row
    return Caller(tenant=tenant, key_id=key_id, scope=KeyScope(scope), expires_at=expires_at,
                  last_used_at=last_used_at)


def tenant_for_key(*, session: Session, key: str) -> Tenant | None:
    caller = caller_for_key(session=session, key=key)
    return None if caller is None else caller.tenant


def touch_key(*, session: Session, key_id: int, now: datetime) -> None:
    """Record a use of the key, unless one was recorded within LAST_USED_RESOLUTION."""
    session.execute(update(ApiKey).where(
        ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None),
                                 ApiKey.last_used_at < now - LAST_USED_RESOLUTION))
        .values(last_used_at=now))


def any_key_exists(*, session: Session) -> bool:
    return session.scalar(select(ApiKey.id).limit(1)) is not None
