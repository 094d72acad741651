"""The API reference is complete: every spec field described, every request body exemplified."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api import schemas
from app.ml.spec import ModelSpec


@pytest.fixture
def openapi(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def request_bodies(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(operation, media type, content) for every media type of every request body."""
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                found.append((f"{method.upper()} {path}", media_type, content))
    return found


def examples_of(content: dict[str, Any], components: dict[str, Any]) -> list[Any]:
    """The examples a reader of the docs sees for one media type of a request body."""
    if "example" in content:
        return [content["example"]]
    if "examples" in content:
        return [e["value"] for e in content["examples"].values()]
    ref = content.get("schema", {}).get("$ref", "")
    schema = components.get(ref.rsplit("/", 1)[-1], {}) if ref else content.get("schema", {})
    return list(schema.get("examples", []))


def test_every_spec_field_has_a_description(openapi: dict[str, Any]) -> None:
    properties = openapi["components"]["schemas"]["ModelSpec"]["properties"]
    assert set(properties) == set(ModelSpec.model_fields)
    undescribed = sorted(name for name, field in properties.items()
                         if not field.get("description", "").strip())
    assert undescribed == []


def test_spec_descriptions_name_real_fields() -> None:
    assert set(schemas.SPEC_FIELD_DESCRIPTIONS) <= set(ModelSpec.model_fields)


def test_every_request_body_has_an_example(openapi: dict[str, Any]) -> None:
    bodies = request_bodies(openapi)
    assert len(bodies) >= 6  # series, readings (JSON and CSV), models, streams, stream readings
    components = openapi["components"]["schemas"]
    missing = [f"{op} ({media})" for op, media, content in bodies
               if not examples_of(content, components)]
    assert missing == []


@pytest.mark.parametrize("model", [schemas.SeriesCreate, schemas.SeriesUpdate, schemas.ForecastIn,
                                   schemas.ModelCreate,
                                   schemas.StreamCreate, schemas.ReadingsIn, schemas.KeyCreate])
def test_body_examples_are_valid_bodies(model: type[Any]) -> None:
    examples = model.model_json_schema()["examples"]
    assert examples
    for example in examples:
        model.model_validate(example)  # an example the API would refuse misleads


def test_the_documented_spec_is_the_ml_spec() -> None:
    body = schemas.ModelCreate.model_validate({"series_ids": [1], "spec": {"epochs": 3}})
    assert isinstance(body.spec, ModelSpec)
    assert body.spec.model_dump() == ModelSpec(epochs=3).model_dump()


def test_the_stream_post_documents_its_body_parameters_and_key(openapi: dict[str, Any]) -> None:
    """The hot path's dependencies were merged for speed; what it documents stays the same."""
    operation = openapi["paths"]["/v1/streams/{stream_id}/readings"]["post"]
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("stream_id", "path"), ("horizon", "query"), ("level", "query"), ("rewarm", "query"),
        ("prefer", "header")]  # Prefer: return=minimal (issue 18)
    assert operation["requestBody"] == {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ReadingsIn"}}}}
    assert operation["security"] == [{"HTTPBearer": []}]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StreamPosted"}


def test_every_numeric_spec_field_documents_both_bounds(openapi: dict[str, Any]) -> None:
    """The bounds the API enforces are the ones it documents: both ends of every number."""
    properties = openapi["components"]["schemas"]["ModelSpec"]["properties"]
    for name, field in properties.items():
        schema = next((s for s in field.get("anyOf", [field]) if s.get("type") != "null"), field)
        if schema.get("type") in ("integer", "number"):
            assert {"minimum", "exclusiveMinimum"} & set(schema), name
            assert {"maximum", "exclusiveMaximum"} & set(schema), name


def test_the_horizon_parameters_publish_the_configured_cap(settings: Any) -> None:
    from app.main import create_app

    settings.max_forecast_horizon_steps = 96
    with TestClient(create_app(settings)) as client:
        document = client.get("/openapi.json").json()
    horizons = {(path, method): parameter["schema"]
                for path, operations in document["paths"].items()
                for method, operation in operations.items()
                for parameter in operation.get("parameters", []) if parameter["name"] == "horizon"}
    assert set(horizons) == {("/v1/series/{series_id}/forecast", "get"),
                             ("/v1/streams/{stream_id}/readings", "post"),
                             ("/v1/streams/{stream_id}/forecast", "get")}
    assert {(s["type"], s["minimum"], s["maximum"]) for s in horizons.values()} == {
        ("integer", 1, 96)}
