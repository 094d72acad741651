"""A small HTTP client of the statecast API that turns every failure into one readable line."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 60.0
UPLOAD_CHUNK_BYTES = 256 * 1024
MAX_FIELDS_SHOWN = 5
# Most readings POST /v1/streams/readings takes in one request.
MAX_BULK_READINGS = 50_000
BULK_READINGS_PATH = "/v1/streams/readings"


class ClientError(Exception):
    """A failure the user can act on; `str()` is the one line to show them."""


class ApiError(ClientError):
    """A request that failed: the server refused it, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def problem_line(response: httpx.Response) -> str:
    """One line from an error response: status, detail, and each field at fault with its value."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:300]
        return f"HTTP {response.status_code} {response.reason_phrase}: {text or 'no details'}"
    return f"HTTP {response.status_code}: " + problem_text(body, response.reason_phrase)


def problem_text(body: dict[str, Any], fallback: str = "no details") -> str:
    """A problem's detail and each field at fault with its value (as a bulk answer's `error`)."""
    line = str(body.get("detail") or body.get("title") or fallback)
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    fields = []
    for error in errors[:MAX_FIELDS_SHOWN]:
        where = f" (row {error['row']})" if "row" in error else ""
        fields.append(f"{error.get('field', '?')}{where} = {error.get('value')!r}: "
                      f"{error.get('message', '')}".rstrip(": "))
    if fields:
        more = f" (+{len(errors) - MAX_FIELDS_SHOWN} more)" if len(errors) > MAX_FIELDS_SHOWN else ""
        line += " [" + "; ".join(fields) + more + "]"
    return line


class ApiClient:
    """JSON calls to the API with the key in `Authorization`; errors raise `ApiError`.

    Args:
        http: an `httpx.Client` whose `base_url` is the API (tests pass a `TestClient`).
        key: the API key, or None to call without one.
    """

    def __init__(self, http: httpx.Client, key: str | None) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    @classmethod
    def connect(cls, url: str, key: str | None) -> "ApiClient":
        return cls(httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_S), key)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"Cannot reach the statecast API at {self.http.base_url} ({exc}); "
                           "start it with `statecast serve` or pass --url / STATECAST_URL"
                           ) from None
        if response.status_code >= 400:
            raise ApiError(problem_line(response), status=response.status_code)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=drop_none(params)).json()

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        response = self.request("POST", path, json=body, params=drop_none(params))
        return response.json() if response.content else None

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body).json()

    def post_stream_readings(self, readings: list[dict[str, Any]], *,
                             rewarm: bool = False) -> dict[str, Any]:
        """One request to the bulk endpoint: readings of many streams, each applied whole or
        refused whole (the answer says which); at most MAX_BULK_READINGS of them."""
        if not 1 <= len(readings) <= MAX_BULK_READINGS:
            raise ValueError(f"Received {len(readings)} readings, expected 1 to "
                             f"{MAX_BULK_READINGS} in one request")
        body: dict[str, Any] = self.post(BULK_READINGS_PATH, {"readings": readings},
                                         rewarm="true" if rewarm else None)
        return body

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def upload_csv(self, path: str, file: Path, params: dict[str, Any],
                   on_progress: Callable[[int], None] | None = None) -> Any:
        """POST a CSV file in chunks, reporting bytes sent so far to `on_progress`."""
        size_bytes = file.stat().st_size

        def chunks() -> Iterator[bytes]:
            sent_bytes = 0
            with file.open("rb") as handle:
                while chunk := handle.read(UPLOAD_CHUNK_BYTES):
                    sent_bytes += len(chunk)
                    if on_progress is not None:
                        on_progress(sent_bytes)
                    yield chunk

        response = self.request(
            "POST", path, params=drop_none(params), content=chunks(),
            headers={"Content-Type": "text/csv", "Content-Length": str(size_bytes)})
        return response.json()

    def close(self) -> None:
        self.http.close()


def drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
