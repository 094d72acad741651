"""Structured logging: one JSON object per line, with the `extra` fields of each call.

Everything a process writes to stderr goes through it: the service's own loggers, uvicorn's,
any library's, Python's warnings, and errors no code caught (in the main thread or another).
"""

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# Loggers of libraries whose information lines an operator wants at the service's own level
# (uvicorn's start-up and shutdown lines); every other library logs its warnings and errors.
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error")
_installed: logging.Handler | None = None


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    from app.observability.context import RequestIdFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter(default="-" if fmt == "text" else None))
    global _installed
    root = logging.getLogger()
    if _installed is not None:  # configured before: replace only what this module added
        root.removeHandler(_installed)
    root.addHandler(handler)
    _installed = handler
    root.setLevel(logging.WARNING)
    service = logging.getLogger("statecast")
    service.handlers[:] = []
    service.setLevel(level.upper())
    service.propagate = True
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.setLevel(level.upper())
        library.propagate = True
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


_uncaught = logging.getLogger("statecast.uncaught")


def _log_uncaught(kind: type[BaseException], error: BaseException,
                  traceback: TracebackType | None) -> None:
    _uncaught.critical("uncaught error", exc_info=(kind, error, traceback),
                       extra={"action": "uncaught_error"})


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or isinstance(args.exc_value, SystemExit):
        return
    _uncaught.critical("uncaught error in a thread", extra={
        "action": "uncaught_error", "thread": args.thread.name if args.thread else None},
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
