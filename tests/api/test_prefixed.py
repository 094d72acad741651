"""PrefixedRouter overrides APIRouter.matches: this fails if FastAPI stops asking an included
router whether a path can be its own before trying each of its routes."""

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Match
from starlette.types import Scope

from app.api.prefixed import prefixed


def test_routers_whose_prefix_cannot_hold_the_path_are_skipped() -> None:
    tried: list[str] = []

    class CountingRoute(APIRoute):
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            tried.append(self.path)
            return super().matches(scope)

    early = APIRouter(prefix="/early", route_class=CountingRoute)
    late = APIRouter(prefix="/late")

    @early.get("/{name}")
    def early_route(name: str) -> dict[str, Any]:
        return {"early": name}

    @late.get("/{name}")
    def late_route(name: str) -> dict[str, Any]:
        return {"late": name}

    app = FastAPI()
    app.include_router(prefixed(early))
    app.include_router(prefixed(late))
    with TestClient(app) as client:
        assert client.get("/late/x").json() == {"late": "x"}
        assert tried == []  # the early router's routes were never tried
        assert client.get("/early/x").json() == {"early": "x"}
        assert set(tried) == {"/early/{name}"}
        assert client.get("/elsewhere").status_code == 404
