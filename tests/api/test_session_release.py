"""SessionReleasingRoute overrides FastAPI's APIRoute: these fail if FastAPI changes under it.

They pin both halves of the reason it exists: with it, a sync route's session is closed, in the
route's thread, before its answer is validated on the event loop; without it, FastAPI still
validates the answer while the session (so its pooled connection) is held, even for a
dependency with `scope="function"`. If FastAPI one day releases it first, the second test fails:
the route class can go (tests/api/test_connection_release.py shows the stall it prevents).
"""

import threading
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, field_validator
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.api.session_release import SessionReleasingRoute


def app_with(route_class: type[APIRoute], seen: dict[str, Any]) -> FastAPI:
    engine = create_engine("sqlite://")

    def get_session() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    class Answer(BaseModel):
        value: int

        @field_validator("value")
        @classmethod
        def _record(cls, value: int) -> int:
            seen["held_while_validated"] = seen["session"].in_transaction()
            seen["validated_on"] = threading.get_ident()
            return value

    router = APIRouter(route_class=route_class)

    @router.get("/answer", response_model=Answer)
    def answer(session: Annotated[Session, Depends(get_session, scope="function")],
               n: int) -> dict[str, int]:
        session.execute(text("SELECT 1"))  # checks a connection out, in a transaction
        seen["session"], seen["ran_on"] = session, threading.get_ident()
        return {"value": n}

    app = FastAPI()
    app.include_router(router)
    return app


def test_a_sync_route_closes_its_session_before_its_answer_is_validated() -> None:
    seen: dict[str, Any] = {}
    app = app_with(SessionReleasingRoute, seen)
    with TestClient(app) as client:
        assert client.get("/answer", params={"n": 7}).json() == {"value": 7}
        assert seen["held_while_validated"] is False
        assert seen["validated_on"] != seen["ran_on"]  # on the event loop, no second hop
        # FastAPI still reads the endpoint's own parameters through the wrapper.
        assert client.get("/answer", params={"n": "x"}).status_code == 422
        parameters = app.openapi()["paths"]["/answer"]["get"]["parameters"]
        assert [p["name"] for p in parameters] == ["n"]


def test_fastapi_itself_still_holds_the_session_while_validating() -> None:
    seen: dict[str, Any] = {}
    with TestClient(app_with(APIRoute, seen)) as client:
        assert client.get("/answer", params={"n": 7}).json() == {"value": 7}
    assert seen["held_while_validated"] is True, (
        "FastAPI now releases a sync route's dependencies before validating its answer: "
        "SessionReleasingRoute may no longer be needed")
