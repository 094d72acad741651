"""`LeanRoute`: a marked endpoint's requests go to its lean handler first, the declined ones to
FastAPI's own handling, directly and through an included (prefixed) router.

This pins `APIRoute.get_route_handler`, the hook the stream posts rely on: if FastAPI stops
building a route's handler through it, these tests fail.
"""

from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.testclient import TestClient

from app.api.lean_route import LeanRoute, served_lean_by
from app.api.prefixed import prefixed


async def lean(request: Request) -> Response | None:
    if request.query_params.get("n") == "1":
        return Response(b"lean", media_type="text/plain")
    return None


def app_with(router: APIRouter, prefix: str) -> FastAPI:
    @router.get("/thing")
    @served_lean_by(lean)
    def thing(n: Annotated[int, Query(ge=1)]) -> Response:
        return Response(f"full {n}".encode(), media_type="text/plain")

    @router.get("/other")
    def other() -> Response:
        return Response(b"other", media_type="text/plain")

    app = FastAPI()
    app.include_router(prefixed(router) if prefix else router)
    return app


@pytest.mark.parametrize("prefix", ["/v1", ""], ids=["prefixed", "plain"])
def test_lean_handler_first_then_fastapi(prefix: str) -> None:
    with TestClient(app_with(APIRouter(prefix=prefix, route_class=LeanRoute), prefix)) as client:
        assert client.get(f"{prefix}/thing?n=1").text == "lean"
        assert client.get(f"{prefix}/thing?n=2").text == "full 2"
        assert client.get(f"{prefix}/thing?n=0").status_code == 422  # FastAPI's validation
        assert client.get(f"{prefix}/other").text == "other"  # unmarked: FastAPI's alone
