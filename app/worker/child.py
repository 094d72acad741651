"""What every job's child process starts with: its settings, logging and database engine."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, pool
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory
from app.logs import configure_logging


@dataclass(frozen=True)
class ChildContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


def child_context(settings_data: dict[str, Any]) -> ChildContext:
    """The settings the worker passed, logging as configured, and an unpooled engine."""
    settings = Settings(**settings_data)
    configure_logging(settings.log_level, settings.log_format)
    engine = create_db_engine(settings.database_url, poolclass=pool.NullPool,
                              lock_timeout_s=settings.database_lock_timeout_s)
    return ChildContext(settings=settings, engine=engine, factory=create_session_factory(engine))
