"""How many readings each tenant stores: a counter on its row, charged once per transaction.

Whatever inserts readings notes how many (`count_inserted`); the route charges the tenant the
total just before it commits (`app.api.quotas.charge_stored_readings`): one UPDATE whatever the
path, so the quota check costs no COUNT(*) and holds the tenant's row only for the commit. A
savepoint rolled back (a stream refused within a bulk post) takes its readings out of the total.
"""

from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, SessionTransaction

from app.db.tables import Tenant

_INSERTED = "statecast.inserted_readings"
_ADD = text("UPDATE tenants SET stored_readings = stored_readings + :added WHERE id = :tenant_id "
            "RETURNING stored_readings")


def count_inserted(session: Session, readings: int) -> None:
    """Note `readings` inserted within the session's innermost transaction."""
    if readings == 0:
        return
    chain = []
    transaction = session.get_nested_transaction() or session.get_transaction()
    while transaction is not None:
        chain.append(transaction)
        transaction = transaction.parent
    session.info.setdefault(_INSERTED, []).append((chain, readings))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    noted: list[tuple[list[Any], int]] | None = session.info.get(_INSERTED)
    if noted:
        session.info[_INSERTED] = [(chain, n) for chain, n in noted if previous not in chain]


def take_inserted(session: Session) -> int:
    """Readings inserted in the session since the last take, less those rolled back."""
    return sum(n for _, n in session.info.pop(_INSERTED, []))


def add_stored(*, session: Session, tenant_id: int, added: int) -> int:
    """Add `added` (negative: removed) to the tenant's count; returns the new count."""
    if added == 0:
        return stored(session=session, tenant_id=tenant_id)
    return int(session.execute(_ADD, {"added": added, "tenant_id": tenant_id}).scalar_one())


def stored(*, session: Session, tenant_id: int) -> int:
    return int(session.scalar(select(Tenant.stored_readings).where(Tenant.id == tenant_id)) or 0)
