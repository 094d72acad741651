"""The stream posts' OpenAPI contract is main's (before their lean handler), plus `Prefer`.

`snapshots/stream_posts_openapi.json` is main's document for the two paths and the schemas
they reference, taken at 9a6755c before the posts got their lean handler (app/api/lean_route.py).
The only change since is the documented `Prefer: return=minimal`: a `prefer` header parameter
and a `204` answer.
"""

import copy
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

SNAPSHOT = Path(__file__).parent / "snapshots" / "stream_posts_openapi.json"
PATHS = ("/v1/streams/readings", "/v1/streams/{stream_id}/readings")


def referenced(document: dict[str, Any], node: Any) -> dict[str, Any]:
    """The component schemas `node` refers to, directly or through each other."""
    names: set[str] = set()
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] not in names:
                name = ref.rsplit("/", 1)[-1]
                names.add(name)
                pending.append(document["components"]["schemas"][name])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return {name: document["components"]["schemas"][name] for name in sorted(names)}


def test_the_stream_posts_document_is_mains_plus_prefer(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = {path: {"post": copy.deepcopy(document["paths"][path]["post"])}
                  for path in PATHS}
    for path in PATHS:
        operation = operations[path]["post"]
        prefer = [p for p in operation["parameters"] if p["name"] == "prefer"]
        assert len(prefer) == 1 and prefer[0]["in"] == "header"
        assert "return=minimal" in prefer[0]["description"]
        operation["parameters"].remove(prefer[0])
        minimal = operation["responses"].pop("204")
        assert "Preference-Applied" in minimal["headers"]
        assert "content" not in minimal  # no body
    main = json.loads(SNAPSHOT.read_text())
    assert operations == main["paths"]
    assert referenced(document, operations) == main["schemas"]
