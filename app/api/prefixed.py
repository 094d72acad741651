"""Routers that turn away a path outside their prefix before trying any of their routes.

FastAPI matches a request by trying every route of every included router in turn, each try
costing a few microseconds of scope bookkeeping besides its regular expression. A stream post,
whose router is included after those of series, models, jobs and forecasts, spent as much
finding its route as authenticating (py-spy, issue 12); one string comparison per router skips
the routers that cannot hold it.

Assumes the router is included without a further prefix, as `app.main` includes every one:
its routes' paths then all begin with its own prefix.
"""

from fastapi import APIRouter
from starlette.routing import Match, get_route_path
from starlette.types import Scope


class PrefixedRouter(APIRouter):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.prefix and not get_route_path(scope).startswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)
