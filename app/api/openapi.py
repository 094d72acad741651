"""The OpenAPI document, with the problem+json answers every operation can give.

FastAPI documents only the success and its own 422 (as application/json, which the API never
sends). The errors come from a few places (authentication, path ids, the body limit, the
database) whatever the route, so they are added here by rule rather than route by route; the
409s and 415s, which only some operations give, by name.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names each field at fault and its value.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object",
            "properties": {"field": {"type": "string"}, "value": {}, "message": {"type": "string"}},
        }},
    },
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                               "schema": {"type": "integer"}}}
DESCRIPTIONS = {
    401: "No API key, or not a valid one (unknown, revoked or expired)",
    403: "The key's scope is `read`: this operation needs a `write` key",
    404: "No such resource of this tenant",
    409: "Conflicts with the resource's state (see `detail`)",
    413: "Request body larger than STATECAST_MAX_UPLOAD_BYTES",
    415: "Body media type not accepted",
    422: "Invalid input; `errors` names each field and value",
    429: "A per-tenant limit was reached; retry after Retry-After",
    503: "Database unavailable or busy, or model files missing; retry after Retry-After",
}
# Operations that can answer 409 or 415, by method and path.
CONFLICTS = {
    ("post", "/v1/series"), ("post", "/v1/series/{series_id}/readings"),
    ("get", "/v1/series/{series_id}/forecast"), ("post", "/v1/models/{model_id}/promote"),
    ("post", "/v1/jobs/{job_id}/cancel"), ("post", "/v1/streams"),
    ("post", "/v1/streams/{stream_id}/readings"), ("get", "/v1/streams/{stream_id}/forecast"),
    ("post", "/v1/streams/{stream_id}/reset"), ("delete", "/v1/keys/{key_id}"),
}
MEDIA_TYPE_CHECKED = {("post", "/v1/series/{series_id}/readings")}


def statuses_of(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    """The problem statuses an operation can answer."""
    if not path.startswith("/v1/"):
        return []
    statuses = [401, 422, 503]
    if method not in ("get", "head", "options"):
        statuses.append(403)
    if "{" in path:
        statuses.append(404)
    if (method, path) in CONFLICTS:
        statuses.append(409)
    if "requestBody" in operation:
        statuses.append(413)
    if (method, path) in MEDIA_TYPE_CHECKED:
        statuses.append(415)
    return sorted(statuses)


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the problem+json responses to each operation of `schema` (in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in statuses_of(method, path, operation):
                response: dict[str, Any] = {"description": DESCRIPTIONS[status],
                                            "content": content}
                if status in (429, 503):
                    response["headers"] = RETRY_AFTER
                responses[str(status)] = response
    return schema


def publish_horizon_cap(schema: dict[str, Any], max_horizon_steps: int) -> dict[str, Any]:
    """Give every `horizon` query parameter the configured cap as its maximum (in place): the
    cap is a setting, so the route's annotation cannot carry it."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "horizon" and parameter["in"] == "query":
                    parameter["schema"]["maximum"] = max_horizon_steps
    return schema


def install(app: FastAPI, *, max_horizon_steps: int) -> None:
    """Serve the schema with the problem responses and the horizon cap (built once, on first
    request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = publish_horizon_cap(document_problems(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes, tags=app.openapi_tags)), max_horizon_steps)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
