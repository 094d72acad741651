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
from hypothesis import HealthCheck, settings
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
