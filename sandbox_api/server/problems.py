"""The one place that knows HTTP statuses: every package's error codes become application/problem+json.

A problem document has ``type`` (``urn:sandbox:<code>``), ``title``, ``status``, ``detail`` (what went
wrong and what to do), ``code`` (stable, for programs) and ``findings`` (every reason, not the first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crypto.errors import CryptoError
from executors.errors import ExecutionError
from policies.errors import PolicyError
from sandbox_api.errors import ServiceError

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
    "deployment-not-initialised": 503,
    "request-invalid": 422,
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

DOMAIN_ERRORS: tuple[type[Exception], ...] = (ServiceError, PolicyError, ExecutionError, CryptoError)


def status_of(code: str) -> int:
    return STATUS.get(code, 500)


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

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
        detail = "no such endpoint; see /docs" if exc.status_code == 404 else str(exc.detail)
        return problem(exc.status_code, code=code, detail=detail, headers=exc.headers)

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

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace or a value to the caller; the log has the details.
        # The type and the route only: a message or traceback could quote request or result data.
        log.error("unhandled %s answering %s %s", type(exc).__name__, request.method, request.url.path)
        return problem(
            500, code="internal-error", detail="the gateway failed unexpectedly; the error is logged"
        )

    for family in DOMAIN_ERRORS:
        app.add_exception_handler(family, domain_error)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(UnicodeError, bad_text)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
