"""The one place that knows HTTP statuses: every package's error codes become application/problem+json.

A problem document has ``type`` (``urn:sandbox:<code>``), ``title``, ``status``, ``detail`` (what went
wrong and what to do), ``code`` (stable, for programs) and ``findings`` (every reason, not the first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route

from crypto.errors import CryptoError
from executors.errors import ExecutionError
from policies.errors import PolicyError
from sandbox_api.errors import DatabaseUnavailable, ServiceError
from sandbox_api.schemas import ProblemOut
from sandbox_api.server.store.db import database_gone

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS: Mapping[str, int] = {
    # sandbox_api
    "service-error": 500,
    "not-authenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,
    "invalid-input": 422,
    "invalid-upload": 422,
    "input-too-complex": 422,
    "invalid-text": 422,
    "internal-error": 500,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "scope-not-active": 403,
    "scope-expired": 403,
    "scope-inconsistent": 422,
    "job-rejected": 422,
    "job-not-ready": 409,
    "job-state-conflict": 409,
    "queue-full": 429,
    "quota-exceeded": 429,
    "service-unavailable": 503,
    "database-unavailable": 503,
    "deployment-not-initialised": 503,
    "request-invalid": 422,
    "request-malformed": 400,
    "method-not-allowed": 405,
    # policies
    "policy-error": 500,
    "policy-violation": 422,
    "scope-invalid": 422,
    "unknown-reference": 422,
    "output-invalid": 500,
    "pass-order": 500,
    "dp-error": 422,
    "dp-result-invalid": 500,
    "dp-budget-exhausted": 409,
    "dp-charge-unknown": 404,
    "not-canonical": 500,
    # executors
    "execution-error": 500,
    "execution-timeout": 504,
    "execution-cancelled": 409,
    "resource-exhausted": 507,
    "execution-failed": 500,
    "data-unavailable": 503,
    "storage-error": 500,
    "sandbox-wall-down": 503,
    "mock-schema-invalid": 422,
    # executors: cross-domain jobs (docs/cross-domain.md)
    "cross-domain-unsupported": 422,
    "cross-domain-protocol-error": 500,
    # executors: the Python-job runtime (reach clients inside an execution error's detail)
    "pyjob-error": 500,
    "pyjob-code-rejected": 422,
    "pyjob-sandbox-violation": 422,
    "pyjob-raised": 422,
    "pyjob-resource-exhausted": 507,
    "pyjob-interrupted": 504,
    "pyjob-no-result": 422,
    "pyjob-output-rejected": 422,
    "pyjob-helper-error": 422,
    # crypto
    "crypto-error": 500,
    "integrity-error": 500,
    "unknown-key": 500,
    "key-destroyed": 410,
    "key-not-valid": 422,
    "keyring-error": 500,
}

TITLES: Mapping[int, str] = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
    504: "Timed out",
    507: "Insufficient storage",
}

# What a client should do with each code: shown in the OpenAPI document's examples and in docs/api.md.
ADVICE: Mapping[str, str] = {
    "service-error": "report it with the time and request; retrying will not help",
    "not-authenticated": "send `Authorization: Bearer <token>`; "
    "an admin issues a new token if yours was revoked",
    "forbidden": "this role or domain may not do this; ask an admin, or use a principal that may",
    "not-found": "check the id or name (ids are full hexadecimal strings); it may not be visible to you",
    "conflict": "the resource already exists or changed: read it again and decide",
    "invalid-input": "fix the input as `detail` and `findings` say, then send again",
    "invalid-upload": "fix the manifest or the files as `findings` say, then upload again",
    "input-too-complex": "flatten the input (fewer nested brackets or terms), then send again",
    "invalid-text": "send valid UTF-8 text (no lone surrogates)",
    "internal-error": "the gateway failed and logged it; report the time and request to the operators",
    "payload-too-large": "send a smaller body (setting max_request_kb; uploads: max_upload_mb)",
    "unsupported-media-type": "send JSON as application/json; uploads as multipart/form-data",
    "scope-not-active": "the scope is pending, rejected or revoked: ask a policy officer",
    "scope-expired": "the scope's validity has ended: ask a policy officer for a new version",
    "scope-inconsistent": "the scope no longer matches the catalog: ask a policy officer to revise it",
    "job-rejected": "the job was stored as rejected: change the query as `findings` say and submit again",
    "job-not-ready": "the job has not finished: wait (`GET /v1/jobs/{id}?wait=30`) and read again",
    "job-state-conflict": "the job is not in a state that allows this: read it and act on its state",
    "queue-full": "wait `Retry-After` seconds, then submit again",
    "quota-exceeded": "wait `Retry-After` seconds (the detail names the limit), then try again",
    "service-unavailable": "try again later",
    "database-unavailable": "wait `Retry-After` seconds, then send the same request again",
    "deployment-not-initialised": "run `sandbox init` on the gateway's state directory",
    "request-invalid": "fix the fields named in `findings` (`fragment` is the field's path)",
    "request-malformed": "send a body that parses: well-formed JSON (or multipart for uploads)",
    "method-not-allowed": "use one of the methods in the `Allow` header",
    "policy-error": "report it; the policy engine failed",
    "policy-violation": "change the query as `findings` say (each names the rule and what is allowed)",
    "scope-invalid": "fix the scope document as `findings` say",
    "unknown-reference": "name only tables and columns of the scope's datasets",
    "output-invalid": "report it; the result could not be checked",
    "pass-order": "report it; the rewrite passes ran out of order",
    "dp-error": "fix the differential-privacy part of the query or scope as `detail` says",
    "dp-result-invalid": "report it; the noised result failed its checks",
    "dp-budget-exhausted": "the privacy budget is spent: ask a policy officer for a new scope",
    "dp-charge-unknown": "report it; the budget ledger has no such charge",
    "not-canonical": "report it; a value had no canonical form",
    "execution-error": "report it; the job could not run",
    "execution-timeout": "make the job cheaper (fewer rows or groups) or ask for a longer timeout",
    "execution-cancelled": "the job was cancelled; submit it again if needed",
    "resource-exhausted": "make the job use less memory or fewer rows",
    "execution-failed": "read `detail`, fix the job and submit again",
    "data-unavailable": "the data cannot be read now (shredded or missing): ask the data steward",
    "storage-error": "report it; the data store failed",
    "sandbox-wall-down": "the sandbox could not be isolated: the operators must fix the host",
    "mock-schema-invalid": "the dataset's declared value domains cannot make mock data: ask the steward",
    "cross-domain-unsupported": "use only the cross-domain query shapes docs/cross-domain.md lists",
    "cross-domain-protocol-error": "report it; the cross-domain protocol failed",
    "pyjob-error": "report it; the Python runtime failed",
    "pyjob-code-rejected": "change the code as `findings` say",
    "pyjob-sandbox-violation": "use only the allowed modules and methods",
    "pyjob-raised": "fix the exception your code raised (see `detail`)",
    "pyjob-resource-exhausted": "make the code use less memory or time",
    "pyjob-interrupted": "the code ran too long: make it cheaper",
    "pyjob-no-result": "assign the answer to `result`",
    "pyjob-output-rejected": "build the result with the aggregation helper",
    "pyjob-helper-error": "fix the aggregation helper's arguments as `detail` says",
    "crypto-error": "report it; a cryptographic operation failed",
    "integrity-error": "report it at once: stored data failed its integrity check",
    "unknown-key": "report it; a key is missing from the keyring",
    "key-destroyed": "the data was crypto-shredded and can never be read again",
    "key-not-valid": "the key is not valid at that time: use a current key",
    "keyring-error": "report it; the keyring could not be read",
}

DOMAIN_ERRORS: tuple[type[Exception], ...] = (ServiceError, PolicyError, ExecutionError, CryptoError)


def status_of(code: str) -> int:
    return STATUS.get(code, 500)


def raises(*errors: type[Exception]) -> dict[int | str, dict[str, Any]]:
    """The problem answers of a route, for its ``responses=``: every status its errors map to, each
    with the problem schema, an example per code and the headers that come with it.

    Every route declares what it raises (``tests/sandbox_api/server/test_openapi_contract.py``). Name
    the classes the handler and its services raise; a route with a token declares ``NotAuthenticated``,
    one behind a role gate ``Forbidden``. Answers that any route can give (invalid requests, bodies too
    large, the unexpected 500) are added to the document for every route by ``openapi_doc``.
    """
    return problem_responses([code_of(error) for error in errors] + ["internal-error"])


def code_of(error: type[Exception]) -> str:
    code = getattr(error, "code", None)
    if not isinstance(code, str) or code not in STATUS:
        raise TypeError(f"{error.__qualname__} has no `code` with a status in problems.STATUS")
    return code


def problem_responses(codes: Iterable[str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI response objects for ``codes``, grouped by status. The schema is the ProblemOut model
    (``openapi_doc`` moves it under ``application/problem+json``); ``x-codes`` lists the codes."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        listed = by_status.setdefault(status_of(code), [])
        if code not in listed:
            listed.append(code)
    return {status: _response(status, listed) for status, listed in sorted(by_status.items())}


def _response(status: int, codes: list[str]) -> dict[str, Any]:
    headers = {
        name: {"description": text, "required": True, "schema": schema}
        for name, text, schema in (
            *((("WWW-Authenticate", "Bearer", {"type": "string"}),) if status == 401 else ()),
            *((("Retry-After", "seconds to wait", {"type": "integer"}),) if status == 429 else ()),
        )
    }
    response: dict[str, Any] = {
        "description": f"{TITLES.get(status, 'Error')}: " + ", ".join(f"`{c}`" for c in codes),
        "model": ProblemOut,
        "content": {
            PROBLEM_JSON: {
                "examples": {code: {"summary": ADVICE[code], "value": example(code)} for code in codes}
            }
        },
        "x-codes": codes,
    }
    if headers:
        response["headers"] = headers
    return response


def example(code: str) -> dict[str, object]:
    """A problem document as the gateway writes it for ``code``."""
    status = status_of(code)
    body: dict[str, object] = {
        "type": f"urn:sandbox:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": ADVICE[code],
        "code": code,
        "findings": [],
    }
    if code in ("job-rejected", "policy-violation"):
        body["findings"] = [
            {
                "rule": "column.deny",
                "message": "column name may not be used (use: deny); use an allowed column instead",
                "fragment": "name",
            }
        ]
    if code == "job-rejected":
        body |= {"job_id": "0" * 32, "state": "rejected"}
    if status == 429:
        body["retry_after"] = 5
    return body


def problem(
    status: int,
    *,
    code: str,
    detail: str,
    findings: Iterable[Any] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "type": f"urn:sandbox:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "findings": [_finding(f) for f in findings],
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _finding(finding: Any) -> dict[str, Any]:
    if hasattr(finding, "to_dict"):
        return dict(finding.to_dict())
    if isinstance(finding, Mapping):
        return {"rule": "", "message": "", "fragment": "", **finding}
    return {"rule": "", "message": str(finding), "fragment": ""}


def from_exception(exc: Exception) -> JSONResponse:
    code = str(getattr(exc, "code", "service-error"))
    status = status_of(code)
    detail = str(getattr(exc, "detail", exc))
    if status >= 500 and not isinstance(exc, ServiceError):
        # Internal failures of other packages can quote paths or values: say what happened, not where.
        detail = f"{detail.splitlines()[0][:300]}" if detail else code
    extra = dict(getattr(exc, "extra", {}) or {})
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return problem(
        status, code=code, detail=detail, findings=getattr(exc, "findings", ()), headers=headers, extra=extra
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path. Starlette's own ``Allow`` names only the first
    route whose path matched, and one path often has a route per method (POST and DELETE of tokens)."""
    methods: set[str] = set()
    for route in flat_routes(request.app.router.routes):
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def flat_routes(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    """Every plain route, also inside included routers (FastAPI keeps those nested)."""
    for route in routes:
        if isinstance(route, Route):
            yield route
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from flat_routes(nested.routes)


#: Retry-After of ``database-unavailable``: about the time a promoted standby takes to accept writes.
DATABASE_RETRY_AFTER_S = 2


def install_problem_handlers(app: FastAPI) -> None:
    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        return from_exception(exc)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        findings = [
            {
                "rule": f"request.{error.get('type', 'invalid')}",
                "message": str(error.get("msg", "")),
                "fragment": ".".join(str(part) for part in error.get("loc", ())),
            }
            for error in exc.errors()
        ]
        return problem(
            422,
            code="request-invalid",
            detail="the request does not match the API: fix the fields listed in findings",
            findings=findings,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {400: "request-malformed", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, f"http-{exc.status_code}"
        )
        detail = "no such endpoint; see /docs" if exc.status_code == 404 else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(exc.status_code, code=code, detail=detail, headers=headers)

    async def too_deep(_request: Request, _exc: Exception) -> JSONResponse:
        # Deeply nested JSON or SQL exhausts the parser's recursion: the input's fault, not ours.
        return problem(
            422,
            code="input-too-complex",
            detail="the input is nested too deeply to process; flatten it (fewer nested brackets or terms)",
        )

    async def bad_text(_request: Request, _exc: Exception) -> JSONResponse:
        return problem(
            422,
            code="invalid-text",
            detail="the request carries text that is not valid Unicode (for example a lone surrogate "
            "such as \\ud800); send UTF-8 text",
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_gone(exc):
            return await unexpected(request, exc)
        log.warning("database unavailable answering %s %s", request.method, request.url.path)
        return from_exception(
            DatabaseUnavailable(
                "the metadata database is unreachable (a failover may be in progress): try again after "
                "Retry-After seconds; a write cut off while it committed may have been stored, so list "
                "your jobs before submitting one again",
                extra={"retry_after": DATABASE_RETRY_AFTER_S},
            )
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_gone(exc):  # raised where the DBAPIError handler does not reach (a middleware)
            return await database_error(request, exc)
        # Never a stack trace or a value to the caller; the log has the details.
        # The type and the route only: a message or traceback could quote request or result data.
        log.error("unhandled %s answering %s %s", type(exc).__name__, request.method, request.url.path)
        return problem(
            500, code="internal-error", detail="the gateway failed unexpectedly; the error is logged"
        )

    for family in DOMAIN_ERRORS:
        app.add_exception_handler(family, domain_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(UnicodeError, bad_text)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
