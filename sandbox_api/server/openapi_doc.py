"""The OpenAPI document: FastAPI's, finished so that a generated client knows the shape of every answer.

Each route declares its own problem answers with ``responses=raises(...)`` (``problems.py``). This
module adds what every route shares and FastAPI cannot know:

- error schemas live under ``application/problem+json`` (FastAPI would file them under
  ``application/json``, the type of the route's success answer);
- FastAPI's generic 422 (``HTTPValidationError``) becomes the problem the gateway really answers
  (``request-invalid``, and the parser's ``input-too-complex`` and ``invalid-text``);
- a body-carrying route can answer 400 (a body that does not parse), 413 and 415 (the body limits in
  ``middleware.py``);
- a route with path parameters can answer 404 (a value holding ``/`` routes nowhere);

Routes that take a token say so through the ``bearer`` security scheme (``deps.current_principal``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from sandbox_api.server.problems import PROBLEM_JSON, problem_responses

BODY_METHODS = frozenset({"post", "put", "patch", "delete"})
# What the request parser and validation answer for any route that takes input.
INPUT_CODES = ("request-invalid", "input-too-complex", "invalid-text")
BODY_CODES = ("request-malformed", "payload-too-large", "unsupported-media-type")
_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"


def link(operation: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: how a value of this answer feeds the next call (generated clients and the
    stateful fuzzer follow them), e.g. ``link("get_job", job_id="$response.body#/job_id")``."""
    return {"operationId": operation, "parameters": parameters}


def operation_id(route: APIRoute) -> str:
    """The handler's name (``submit_job``): what a generated client calls the method."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    """Serve the finished document at ``app.openapi_url`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = finish(document)
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 - FastAPI's documented way to replace the builder


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document with the shared problem answers added to every operation (in place)."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            _finish_operation(path, method, operation)
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _finish_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    shared: list[str] = []
    generic = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if generic.get("$ref") == _FASTAPI_VALIDATION:
        del responses["422"]
    if operation.get("parameters") or "requestBody" in operation:
        shared += INPUT_CODES
    if "{" in path:
        shared.append("not-found")
    if method in BODY_METHODS:
        shared += BODY_CODES
    for status, response in problem_responses(shared).items():
        _merge(responses, str(status), response)
    for response in responses.values():
        _to_problem_json(response)


def _merge(responses: dict[str, Any], status: str, shared: dict[str, Any]) -> None:
    """Add the shared codes of ``status`` to the route's own problem answer, or add the answer."""
    schema_ref = {"$ref": "#/components/schemas/ProblemOut"}
    fresh = {
        "description": shared["description"],
        "content": {PROBLEM_JSON: {"schema": schema_ref, **shared["content"][PROBLEM_JSON]}},
        "x-codes": list(shared["x-codes"]),
        **({"headers": shared["headers"]} if "headers" in shared else {}),
    }
    own = responses.get(status)
    if own is None:
        responses[status] = fresh
        return
    codes = own.setdefault("x-codes", [])
    examples = own.setdefault("content", {}).setdefault(PROBLEM_JSON, {}).setdefault("examples", {})
    for code in shared["x-codes"]:
        if code not in codes:
            codes.append(code)
            examples[code] = shared["content"][PROBLEM_JSON]["examples"][code]
    own["description"] = own["description"].split(":")[0] + ": " + ", ".join(f"`{c}`" for c in codes)


def _to_problem_json(response: dict[str, Any]) -> None:
    """A problem answer's schema under ``application/problem+json`` only."""
    if "x-codes" not in response:
        return
    content: dict[str, Any] = response.setdefault("content", {})
    moved = content.pop("application/json", None)
    problem = content.setdefault(PROBLEM_JSON, {})
    if moved is not None and "schema" in moved:
        problem["schema"] = moved["schema"]
    problem.setdefault("schema", {"$ref": "#/components/schemas/ProblemOut"})
