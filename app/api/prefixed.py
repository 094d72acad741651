"""Routers that turn away a path outside their prefix before trying any of their routes.

FastAPI matches a request by trying every route of every included router in turn, each try
costing a few microseconds of scope bookkeeping besides its regular expression, so a route
included late (the stream post) pays for every route before it. One string comparison per
router skips the routers that cannot hold the path (docs/benchmarks.md, "Streams and
forecasts", for what it saves). FastAPI has no public prefix check for an included router, so
this overrides `APIRouter.matches`; tests/api/test_prefixed.py fails if FastAPI stops asking an
included router's `matches` first.
"""

from fastapi import APIRouter
from starlette.routing import Match, get_route_path
from starlette.types import Scope


class PrefixedRouter(APIRouter):
    """Holds one router whose every path starts with `path_prefix` (its own prefix)."""

    def __init__(self, router: APIRouter) -> None:
        super().__init__()
        self.path_prefix = router.prefix
        self.include_router(router)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(self.path_prefix):
            return Match.NONE, {}
        return super().matches(scope)


def prefixed(router: APIRouter) -> APIRouter:
    """`router` behind a prefix check, for `include_router`; itself if it has no prefix."""
    return PrefixedRouter(router) if router.prefix else router
