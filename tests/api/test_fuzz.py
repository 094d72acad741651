"""Schema fuzzing: every operation of the OpenAPI schema, on both databases, never a 5xx, and
every 422 names the field and the value at fault (docs/operations.md says so).

FUZZ_EXAMPLES per operation (100; STATECAST_FUZZ_EXAMPLES sets another number for a quick run),
about 45 s of CPU per backend (docs/operations.md records a run). The Server-Sent Events
operations are left out: on a job or stream that exists they stream until it ends, which a
fuzzer cannot wait for.
"""

import os
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from app.config import Settings
from app.main import create_app

FUZZ_EXAMPLES = int(os.environ.get("STATECAST_FUZZ_EXAMPLES", "100"))


# The schema is read from an app of its own (it needs no database); each test's requests go to
# the app of the test's own database, on each backend. (schemathesis' `from_fixture` would do
# that too, but does not run on pytest 9.)
SCHEMA = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(database_url="sqlite://"))).exclude(path_regex=r"/events$")


@schemathesis.check
def bad_input_names_its_field(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 422 lists, in `errors`, each field at fault and the value it received."""
    if response.status_code == 422:
        errors = response.json().get("errors") or []
        if not errors or not all(e.get("field") and "value" in e for e in errors):
            raise AssertionError(f"a 422 without the field and value at fault: {response.text}")
    return None


@SCHEMA.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case: Any, client: TestClient, auth: dict[str, str]) -> None:
    case.call_and_validate(headers=auth, checks=[not_a_server_error, bad_input_names_its_field],
                           app=client.app)


# The covariate and calendar fields of series, fuzzed against series that exist (the schema
# fuzzer above mostly meets ids that do not): another tenant's, the series itself, a cycle,
# codes the holidays package does not know. Never a 5xx; a refusal names a field and changes
# nothing.
LINK_NAMES = st.one_of(st.sampled_from(["temperature", "wind", "t_2"]), st.text(max_size=8))
HOLIDAYS = st.one_of(st.none(), st.sampled_from(["US", "GB-ENG", "AU-VIC", "XX", "US-XX", "GB-",
                                                 ""]), st.text(max_size=6))
SPECIAL_DAYS = st.lists(st.fixed_dictionaries({
    "date": st.one_of(st.dates().map(str), st.text(max_size=12)),
    "label": st.text(max_size=6)}), max_size=3)


def link_bodies(series_ids: list[int]) -> st.SearchStrategy[Any]:
    link = st.fixed_dictionaries(
        {"series_id": st.one_of(st.sampled_from(series_ids), st.integers(-5, 2**40)),
         "name": LINK_NAMES},
        optional={"known_future": st.one_of(st.booleans(), st.text(max_size=3))})
    return st.fixed_dictionaries({}, optional={
        "covariates": st.one_of(st.lists(link, max_size=3), st.none(), st.text(max_size=3)),
        "holidays": HOLIDAYS, "special_days": SPECIAL_DAYS})


def test_series_covariate_fields_never_answer_5xx(client: TestClient, auth: dict[str, str],
                                                  other_auth: dict[str, str]) -> None:
    ids = [client.post("/v1/series", json={"name": n, "freq": "h"}, headers=auth).json()["id"]
           for n in ("a", "b", "c")]
    theirs = client.post("/v1/series", json={"name": "x", "freq": "h"},
                         headers=other_auth).json()["id"]
    target = ids[0]

    @given(body=link_bodies([*ids, theirs]))
    @settings(max_examples=FUZZ_EXAMPLES * 6, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def patch_once(body: dict[str, Any]) -> None:
        before = client.get(f"/v1/series/{target}", headers=auth).json()
        answer = client.patch(f"/v1/series/{target}", json=body, headers=auth)
        assert answer.status_code < 500, answer.text
        after = client.get(f"/v1/series/{target}", headers=auth).json()
        if answer.status_code >= 400:
            assert answer.json()["errors"][0]["field"], answer.text
            assert after == before
        else:
            assert after == {**before, **answer.json()}
            for field in body:
                if field != "covariates":
                    assert after[field] == answer.json()[field]

    patch_once()
    # Whatever the fuzzing linked, the links form no cycle.
    edges = {sid: {c["series_id"] for c in client.get(f"/v1/series/{sid}",
                                                       headers=auth).json()["covariates"]}
             for sid in ids}
    for start in ids:
        seen, frontier = set(), set(edges[start])
        while frontier:
            assert start not in frontier, edges
            seen |= frontier
            frontier = {n for f in frontier for n in edges.get(f, ())} - seen


def test_covariate_cols_never_answer_5xx(client: TestClient, auth: dict[str, str]) -> None:
    temperature = client.post("/v1/series", json={"name": "t", "freq": "h"},
                              headers=auth).json()["id"]
    load = client.post("/v1/series", headers=auth, json={
        "name": "load", "freq": "h",
        "covariates": [{"series_id": temperature, "name": "temperature"}]}).json()["id"]
    body = b"ts,load,temperature\n2024-01-01 00:00,1,5\n2024-01-01 01:00,,6\n"

    @given(cols=st.one_of(st.text(max_size=20), st.sampled_from(
        ["temperature", "temperature:temperature", "load", "ts", "temperature,temperature",
         ":", "a:b:c", "temperature:"])))
    @settings(max_examples=FUZZ_EXAMPLES * 3, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def upload_once(cols: str) -> None:
        answer = client.post(f"/v1/series/{load}/readings", params={"covariate_cols": cols},
                             content=body, headers={**auth, "Content-Type": "text/csv"})
        assert answer.status_code < 500, answer.text

    upload_once()
