"""JSON responses written with orjson, for the hot paths that skip response-model validation.

FastAPI validates and encodes a returned model field by field; a stream post's answer is built
from values the service already checked, so it is serialised directly (the route still declares
its `response_model`, which documents it). orjson writes NaN as null, as JSON requires.
"""

from typing import Any

import orjson
from fastapi import Response


def json_response(body: Any, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json",
                    headers=headers)
