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
