"""The OpenAPI document describes every answer: a client generated from it knows every error's shape.

The rules a new route must follow (each test below fails with the fix in its message):

- declare what it raises: ``responses=raises(NotFound, ...)`` from ``sandbox_api/server/problems.py``;
  a route that takes a token raises ``NotAuthenticated``, one behind a role gate ``Forbidden``;
- answer with a typed model from ``sandbox_api/schemas.py``, never a bare ``dict`` or ``Any``; a member
  whose shape is open on purpose is listed in ``FREE_FORM`` below with the reason.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import StarletteDeprecationWarning

from sandbox_api.server.app import create_app
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.problems import ADVICE, PROBLEM_JSON, STATUS, flat_routes
from tests.sandbox_api.api_helpers import make_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[3]
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemOut"}

# Members whose shape is open on purpose (schema: ``object`` or any value), with the reason.
FREE_FORM: dict[str, str] = {
    "AuditBundleOut.head": "the bundle as written for offline verification (docs/auditing.md)",
    "AuditBundleOut.events": "canonical audit events, verified offline byte for byte",
    "AuditBundleOut.checkpoints": "signed checkpoints, verified offline byte for byte",
    "AuditBundleOut.signing_keys": "the keys document, verified offline byte for byte",
    "AuditEventOut.details": "each event kind records its own details",
    "CheckOut.dp": "the mechanism's own report; its members depend on the mechanism",
    "ColumnOut.domain": "the declared value domain: categories or a range (docs/design.md §3)",
    "MismatchOut.expected": "a replayed field's value: any JSON value",
    "MismatchOut.actual": "a replayed field's value: any JSON value",
    "ReceiptOut.scope": "signed: kept exactly as the gateway signed it",
    "ReceiptOut.query": "signed: kept exactly as the gateway signed it",
    "ReceiptOut.result": "signed: kept exactly as the gateway signed it",
    "ReceiptOut.suppression": "signed: kept exactly as the gateway signed it",
    "ReceiptOut.audit_head": "signed: kept exactly as the gateway signed it",
    "ResultOut.rows": "cells are strings, numbers, booleans or null, as `column_types` says",
    "ResultOut.output": "a Python job's released object: plain data of the job's own shape",
    "OpenDataOut.rows": "the released table's cells, as ResultOut.rows",
    "OpenDataOut.output": "the released Python object, as ResultOut.output",
    "ReviewOut.report": "the disclosure report, whose findings depend on the job",
    "ReviewOut.output": "the withheld output: plain data of the job's own shape",
    "ScopeVersionOut.document": "the scope document as written (docs/writing-a-scope.md)",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = make_settings(tmp_path_factory.mktemp("state"))
    init_deployment(settings)
    return create_app(settings)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def routes(app: FastAPI) -> Iterator[APIRoute]:
    for route in flat_routes(app.routes):
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def test_the_walk_finds_every_route(app: FastAPI, document: dict[str, Any]) -> None:
    assert {label(r) for r in routes(app)} == {name for name, _ in operations(document)}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def label(route: APIRoute) -> str:
    return f"{','.join(sorted(route.methods))} {route.path}"


def calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from calls(sub)


def test_every_route_declares_what_it_raises(app: FastAPI) -> None:
    missing = [label(r) for r in routes(app) if "x-codes" not in r.responses.get(500, {})]
    assert not missing, (
        f"routes without a raises(...) declaration: {missing}; add "
        "`responses=raises(NotAuthenticated, Forbidden, NotFound, ...)` (sandbox_api/server/problems.py) "
        "naming every error class the handler and its services raise"
    )


def test_routes_behind_a_token_or_a_role_declare_401_and_403(app: FastAPI) -> None:
    problems = []
    for route in routes(app):
        names = {getattr(call, "__qualname__", "") for call in calls(route.dependant)}
        codes = {code for response in route.responses.values() for code in response.get("x-codes", [])}
        if "current_principal" in names and "not-authenticated" not in codes:
            problems.append(f"{label(route)} takes a token: add NotAuthenticated to its raises(...)")
        if any(name.startswith("require.") for name in names) and "forbidden" not in codes:
            problems.append(f"{label(route)} has a role gate: add Forbidden to its raises(...)")
    assert not problems, "\n".join(problems)


def test_every_error_answer_is_a_problem_document(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            assert set(response["content"]) == {PROBLEM_JSON}, f"{name} {status}: {response['content']}"
            assert response["content"][PROBLEM_JSON]["schema"] == PROBLEM_REF, f"{name} {status}"
            assert response["x-codes"], f"{name} {status} lists no code"
            for code in response["x-codes"]:
                assert STATUS[code] == int(status), f"{name}: {code} is not a {status}"
                example = response["content"][PROBLEM_JSON]["examples"][code]["value"]
                assert example["code"] == code
                assert example["status"] == int(status)
        assert "500" in operation["responses"], f"{name} does not declare the unexpected 500"


def test_shared_answers_are_declared_where_they_can_happen(document: dict[str, Any]) -> None:
    for name, operation in operations(document):
        responses = operation["responses"]
        if operation.get("parameters") or "requestBody" in operation:
            assert "request-invalid" in responses["422"]["x-codes"], name
        if name.split()[0] in {"POST", "PUT", "PATCH", "DELETE"}:
            assert "payload-too-large" in responses["413"]["x-codes"], name
            assert "unsupported-media-type" in responses["415"]["x-codes"], name
        if "{" in name:
            assert "not-found" in responses["404"]["x-codes"], name
        if operation.get("security"):
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"], name
        if "429" in responses:
            assert responses["429"]["headers"]["Retry-After"]["required"], name
    assert "ValidationError" not in document["components"]["schemas"], "FastAPI's 422 schema leaked"


def test_routes_that_take_a_token_declare_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    open_routes = {name for name, operation in operations(document) if not operation.get("security")}
    assert open_routes == {
        "GET /v1/health",
        "GET /v1/keys/signing",
        "GET /livez",
        "GET /readyz",
        # The public open-data catalog: published tables are public by a policy officer's decision.
        "GET /v1/open-data",
        "GET /v1/open-data/{publication_id}",
        "GET /v1/open-data/{publication_id}/data.csv",
    }
    for name, operation in operations(document):
        headers = [p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "authorization" not in headers, f"{name} declares the token as a plain header"


def _is_typed(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return "$ref" in schema.get("items", {})
    return False


def test_success_answers_are_typed_models(document: dict[str, Any]) -> None:
    untyped = []
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            json_body = response.get("content", {}).get("application/json")
            if int(status) < 300 and json_body is not None and not _is_typed(json_body["schema"], document):
                untyped.append(f"{name} {status}: {json_body['schema']}")
    assert not untyped, (
        f"untyped success answers: {untyped}; return a model from sandbox_api/schemas.py (the handler's "
        "return annotation), not dict, Any or a bare Response"
    )


def _free_form(schema: dict[str, Any]) -> bool:
    shape = {k: v for k, v in schema.items() if k not in ("description", "title", "default", "examples")}
    if not shape:
        return True
    if "anyOf" in shape:
        return any(_free_form(option) for option in shape["anyOf"] if option != {"type": "null"})
    if shape.get("type") == "array":
        return _free_form(shape.get("items", {}))
    extra = shape.get("additionalProperties", True)
    typed_map = isinstance(extra, dict) and not _free_form(extra)  # dict[str, str] and the like
    return shape.get("type") == "object" and "properties" not in shape and not typed_map


def test_response_members_have_known_shapes(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    found = {
        f"{model}.{member}"
        for model, schema in schemas.items()
        for member, member_schema in schema.get("properties", {}).items()
        if _free_form(member_schema)
    }
    new = sorted(found - set(FREE_FORM))
    assert not new, (
        f"members without a shape: {new}; give them a model in sandbox_api/schemas.py, or, if the shape "
        "is open on purpose, list them in FREE_FORM in this test with the reason"
    )
    assert not set(FREE_FORM) - found, f"FREE_FORM lists members that are typed now: {set(FREE_FORM) - found}"


def test_every_code_has_advice_and_is_explained_in_docs_api() -> None:
    assert set(ADVICE) == set(STATUS)
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (\d{3}) \|", text, flags=re.MULTILINE))
    assert {code: int(status) for code, status in rows.items()} == dict(STATUS), (
        "docs/api.md's table of codes differs from problems.STATUS"
    )


def test_a_405_allows_every_method_of_the_path(app: FastAPI) -> None:
    # Three routes share this path (GET lists the tokens, POST issues one, DELETE revokes them all).
    answer = TestClient(app).request("PUT", "/v1/principals/alice/tokens")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["allow"] == "DELETE, GET, POST"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_outside(app: FastAPI, page: str) -> None:
    client = TestClient(app)
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", html)
    assets = [u for pair in urls for u in pair if u]
    assert assets
    assert all(u.startswith("/") for u in assets), assets
    assert "http://" not in html
    assert "https://" not in html
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
