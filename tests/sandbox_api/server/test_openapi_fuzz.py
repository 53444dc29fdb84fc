"""The gateway answers exactly what its OpenAPI document says, for generated requests (schemathesis).

A live gateway (uvicorn on loopback, over a deployment with real storage, a dataset and an approved
scope) receives requests generated from the document for every operation, valid and invalid, as an
admin, a policy officer and an operator. Every answer is checked: no server error, a declared status, a
declared content type, the declared headers and a body matching the declared schema. A route whose
answers the document does not describe fails here.

Bounded: a fixed number of examples per operation, derandomised, so a run takes the same time each time.

Off on purpose: schemathesis's ``positive_data_acceptance`` (every schema-valid request is accepted). A
schema-valid SQL query or scope document can still break the policy, and the documented answer to that
is a 422 with findings (``job-rejected``, ``scope-invalid``); so is a request that names both or neither
of ``sql`` and ``code``. Invalid requests must be refused (``negative_data_rejection`` is on).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.sandbox_api.api_helpers import World
from tests.sandbox_api.loopback import served

# Bounded: about 900 requests in all, some 30 s of one core.
pytestmark = pytest.mark.timeout(180)

ROLES = ("admin", "olga", "alice")  # an admin, a policy officer, an operator
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 2}
# Left out: it takes no input, so every admin call would start a new signing key (test_keys.py covers
# its answers); the contract test still checks its declaration.
STATE_CHANGING = {"POST /v1/keys/signing/rotate"}


@pytest.fixture(scope="module")
def gateway(api: World) -> Iterator[str]:
    with served(api.client.app) as url:
        yield url


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One connection pool for every call, closed at the end (no socket left to the collector)."""
    with requests.Session() as pool:
        yield pool


@pytest.fixture(scope="module")
def schema(api: World) -> Any:
    return schemathesis.openapi.from_dict(api.client.app.openapi())  # type: ignore[attr-defined]


def operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label not in STATE_CHANGING:
            yield operation


def fuzz(
    operation: Any, mode: GenerationMode, *, url: str, headers: dict[str, str], session: requests.Session
) -> list[str]:
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        try:
            case.call_and_validate(base_url=url, session=session, headers=headers, checks=CHECKS, timeout=30)
        except FailureGroup as failure:
            failures.append(f"{operation.label} ({mode.value}): {str(failure).strip()[:1500]}")

    try:
        run()
    except Unsatisfiable:
        # Nothing about the operation can be invalid (no parameters, no body): no negative case.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


@pytest.mark.parametrize("role", ROLES)
def test_every_answer_matches_the_document(
    api: World, gateway: str, schema: Any, session: requests.Session, role: str
) -> None:
    failures: list[str] = []
    for operation in operations(schema):
        for mode in EXAMPLES:
            failures += fuzz(operation, mode, url=gateway, headers=api.h(role), session=session)
    assert not failures, f"{len(failures)} answers differ from the document:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("role", ["olga", "alice"])
def test_linked_calls_answer_what_the_document_says(
    api: World, gateway: str, schema: Any, session: requests.Session, role: str
) -> None:
    """Sequences of calls that follow the document's links (a proposed scope version to its decisions, a
    submitted job to its reads and cancel) wherever a generated call created something. Generated scope
    documents and SQL rarely pass validation, so the full chain on real data (sign in, submit, read the
    result) is walked by test_generated_client.py."""
    headers = api.h(role)

    class Linked(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": gateway, "session": session, "headers": headers, "timeout": 30}

        def validate_response(self, response: Any, case: Any, *_args: Any, **_kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    Linked.run(
        settings=settings(
            max_examples=8,
            stateful_step_count=4,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_anonymous_callers_get_documented_refusals(
    gateway: str, schema: Any, session: requests.Session
) -> None:
    failures: list[str] = []
    for operation in operations(schema):
        failures += fuzz(operation, GenerationMode.POSITIVE, url=gateway, headers={}, session=session)
    assert not failures, "\n\n".join(failures)
