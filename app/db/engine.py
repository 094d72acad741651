"""Engines and sessions that behave the same on SQLite and PostgreSQL."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# How long a statement waits for a lock held by another transaction before it fails (the API
# answers 503 with Retry-After then): SQLite's busy timeout, PostgreSQL's lock_timeout.
DEFAULT_LOCK_TIMEOUT_S = 10.0
# A PostgreSQL server that does not answer a connection attempt within this long is down.
CONNECT_TIMEOUT_S = 5
# Connections older than this are replaced, so a failover or a proxy's idle cut is never seen.
POOL_RECYCLE_S = 1800
# Asked of a connection before its transaction begins, it makes SQLite take the write lock at
# BEGIN: a read-then-write transaction can otherwise fail with "database is locked" when another
# writer committed after its first read (PostgreSQL uses row locks instead and ignores it).
WRITE_LOCK = {"sqlite_begin": "BEGIN IMMEDIATE"}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(url: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                     **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout, foreign keys and real BEGINs.

    Every connection waits at most `lock_timeout_s` for a lock; pooled PostgreSQL connections
    are checked before use (pre-ping) and replaced after `POOL_RECYCLE_S`.
    """
    lock_timeout_ms = max(1, round(lock_timeout_s * 1000))
    if not is_sqlite(url):
        if kwargs.get("poolclass") is None:
            kwargs.setdefault("pool_recycle", POOL_RECYCLE_S)
        return create_engine(url, pool_pre_ping=True, connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c lock_timeout={lock_timeout_ms}"}, **kwargs)
    database = make_url(url).database
    if database and database != ":memory:":
        _create_private(Path(database))
    engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN and ignores IMMEDIATE; take it over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={lock_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600): it holds every tenant's data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def lock_for_write(session: Session) -> None:
    """Start the session's transaction holding SQLite's write lock; call before any query."""
    session.connection(execution_options=WRITE_LOCK)


@contextmanager
def transaction(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """A session whose transaction commits at the end of the block, or rolls back on error."""
    with factory() as session, session.begin():
        if write:
            lock_for_write(session)
        yield session
