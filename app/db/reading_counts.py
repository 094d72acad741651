"""How many readings each tenant stores: a counter, charged once per transaction.

Whatever inserts readings notes how many (`count_inserted`); the route charges the tenant the
total just before it commits (`app.api.quotas.charge_stored_readings`), so the quota check costs
no COUNT(*). A savepoint rolled back (a stream refused within a bulk post) takes its readings out
of the total.

The counter is SHARDS rows per tenant, each thread adding to its own: on one row, a tenant's
concurrent posts queued for it through each other's commits (8 connections posting one reading
each committed 8 times fewer transactions a second on PostgreSQL). A transaction sees its own
shard and the others as last committed, so concurrent posts can pass the limit together by at
most what they add at that moment.
"""

import itertools
import os
import threading
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, SessionTransaction

SHARDS = 64
_INSERTED = "statecast.inserted_readings"
_ADD = text("INSERT INTO tenant_readings (tenant_id, shard, readings) "
            "VALUES (:tenant_id, :shard, :added) ON CONFLICT (tenant_id, shard) "
            "DO UPDATE SET readings = tenant_readings.readings + excluded.readings")
_SUM = text("SELECT coalesce(sum(readings), 0) FROM tenant_readings WHERE tenant_id = :tenant_id")
_threads = threading.local()
_next_shard = itertools.count(os.getpid())


def _shard() -> int:
    """This thread's shard: threads of a process take the next one in turn."""
    shard: int | None = getattr(_threads, "shard", None)
    if shard is None:
        shard = _threads.shard = next(_next_shard) % SHARDS
    return shard


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
    if added != 0:
        session.execute(_ADD, {"tenant_id": tenant_id, "shard": _shard(), "added": added})
    return stored(session=session, tenant_id=tenant_id)


def stored(*, session: Session, tenant_id: int) -> int:
    return int(session.execute(_SUM, {"tenant_id": tenant_id}).scalar_one())
