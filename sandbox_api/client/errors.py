"""The client's one error, ``ClientError``, and how an error response or an unexpected body becomes one.

Every failure the gateway reports arrives as ``application/problem+json``; the client raises it as
``ClientError`` with the problem's ``status``, stable ``code``, human ``detail`` and policy ``findings``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_PROBLEM_TYPE_PREFIX: Final = "urn:sandbox:"


class ClientError(Exception):
    """A request the gateway refused or could not answer.

    ``status`` is the HTTP status (0 when the gateway could not be reached), ``code`` the problem's
    stable code, ``detail`` what to do about it, ``findings`` the policy findings (dicts with at least
    ``rule`` and ``message``) and ``problem`` the whole problem document.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        findings: Sequence[Mapping[str, Any]] = (),
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.findings: tuple[Mapping[str, Any], ...] = tuple(findings)
        self.problem: Mapping[str, Any] = dict(problem or {})

    def describe(self) -> str:
        """The detail and every finding, one per line, for people."""
        lines = [self.detail]
        lines.extend(f"  - [{f.get('rule', '?')}] {f.get('message', '')}" for f in self.findings)
        return "\n".join(lines)


def validate(model: type[M], body: Any, what: str) -> M:
    """``body`` as ``model``; a body that does not fit is the gateway's fault, so it is a ``ClientError``."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ClientError(200, "unexpected-response", f"{what} answered an unexpected body: {exc}") from exc


def problem_error(response: httpx.Response) -> ClientError:
    """A ``ClientError`` from an error response, problem+json or not."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip() or response.reason_phrase
        return ClientError(response.status_code, "http-error", text[:500])
    code = body.get("code")
    if not isinstance(code, str):
        problem_type = str(body.get("type", ""))
        code = problem_type.removeprefix(_PROBLEM_TYPE_PREFIX) if problem_type else "http-error"
    detail = body.get("detail") or body.get("title") or response.reason_phrase
    findings = body.get("findings") or []
    return ClientError(
        response.status_code,
        code,
        str(detail),
        findings=[f for f in findings if isinstance(f, Mapping)],
        problem=body,
    )
