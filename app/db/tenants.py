"""Tenants and their API keys (only a SHA-256 of each key is stored)."""

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import ApiKey, Tenant

KEY_PREFIX = "sc_"


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, session: Session, tenant_name: str) -> tuple[Tenant, str]:
    """A new key for the tenant (created if new); the key is returned once and never stored."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10]))
    session.flush()
    return tenant, key


def tenant_for_key(*, session: Session, key: str) -> Tenant | None:
    return session.scalar(
        select(Tenant).join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key))
    )


def any_key_exists(*, session: Session) -> bool:
    return session.scalar(select(ApiKey.id).limit(1)) is not None
