"""Errors a request can meet, each with its HTTP status; the API renders them as problem+json."""

from typing import Any


class ServiceError(Exception):
    """A failure the client can act on; `errors` lists field-level details."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class Invalid(ServiceError):
    status = 422
    title = "Invalid input"


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    """The key is valid but may not do this (a read key on a writing route)."""

    status = 403
    title = "Forbidden"


class TooManyRequests(ServiceError):
    """A per-tenant limit was reached; `retry_after_s` says when to try again."""

    status = 429
    title = "Too many requests"


class Unavailable(ServiceError):
    """Something the request needs is missing on the server's side (model files, database)."""

    status = 503
    title = "Service unavailable"


def field_error(field: str, value: Any, message: str, **where: Any) -> dict[str, Any]:
    """One entry of a problem's `errors`: which field, the value received, what is wrong."""
    return {"field": field, "value": value, "message": message, **where}


# Characters of an unreadable body shown back in its problem.
BODY_OPENING_CHARS = 80


def unreadable_body(cause: BaseException, body: bytes | None = None) -> Invalid:
    """The one answer to a body that cannot be read as JSON, whichever route reads it: naming
    the byte that is not UTF-8, where the JSON breaks off, or that it nests too deeply. The
    value shown is the body's opening where the caller has the body, so a client sees which
    body it was."""
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start:cause.start + 1].hex()
        return Invalid(f"The body is not valid UTF-8: byte 0x{byte} at position {cause.start}",
                       errors=[field_error("body", f"0x{byte}",
                                           f"not UTF-8 (byte {cause.start})")])
    opening = None if body is None else body[:BODY_OPENING_CHARS].decode("utf-8", "replace")
    if isinstance(cause, RecursionError):
        return Invalid("The body is not valid JSON: nested too deeply",
                       errors=[field_error("body", opening, "nested too deeply")])
    position = getattr(cause, "pos", None)
    reason = getattr(cause, "msg", None) or str(cause)
    where = "" if position is None else f" at character {position}"
    return Invalid(f"The body is not valid JSON: {reason}{where}",
                   errors=[field_error("body", opening if body is not None else position,
                                       f"not valid JSON: {reason}{where}")])
