"""The id of the request being served, and a logging filter that stamps it on every line."""

import logging
import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is echoed into logs and headers, so only a short, plain token is trusted.
MAX_REQUEST_ID_CHARS = 128
_VALID_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID_CHARS}}}")

request_id_var: ContextVar[str | None] = ContextVar("statecast_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for, or None outside a request."""
    return request_id_var.get()


def accept_or_new_request_id(incoming: str | None) -> str:
    """The client's `X-Request-ID` when it is a plain token, else a fresh random id."""
    if incoming is not None and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on each record logged while a request is served (a handler filter).

    Args:
        default: the value outside requests; None leaves the attribute off (JSON lines then
            have no `request_id` key), "-" suits a text format string with `%(request_id)s`.
    """

    def __init__(self, default: str | None = None) -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = request_id_var.get()
            if request_id is not None:
                record.request_id = request_id
            elif self.default is not None:
                record.request_id = self.default
        return True


def install_request_id_filter(logger_name: str = "statecast") -> None:
    """Add a `RequestIdFilter` to each handler of `logger_name` that lacks one.

    Filters on a handler, not a logger, so records of child loggers (`statecast.api`, ...) that
    propagate up to it are stamped too.
    """
    for handler in logging.getLogger(logger_name).handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
