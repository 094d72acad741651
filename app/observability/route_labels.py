"""The route template a request matched, the label that keeps metrics and logs low-cardinality."""

from starlette.types import Scope

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """`/v1/series/{series_id}` rather than `/v1/series/7`; `<unmatched>` for a 404 of no route.

    The router records the matched route in the scope, which middleware sees once the request
    has been handled.
    """
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE
