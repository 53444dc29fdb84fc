"""Request-body limits and content types for JSON endpoints, enforced before any handler runs."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox_api.server.problems import problem

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def accepts_forms(path: str) -> bool:
    """The web console posts HTML forms (URL-encoded), under the same size cap as JSON."""
    return path == "/console" or path.startswith("/console/")


FORM_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})


def is_upload_path(path: str) -> bool:
    """Uploads stream their own body (multipart, larger cap): see routes/datasets.py (the console's
    upload page calls the same function)."""
    return path.startswith(("/v1/datasets/", "/console/datasets/")) and path.endswith("/versions")


def is_sample_path(path: str) -> bool:
    """The console's manifest draft reads a file's first bytes, sent as they are (console/pages_data.py
    caps them tighter than this middleware does)."""
    return path.startswith("/console/datasets/") and path.endswith("/draft-manifest")


SAMPLE_TYPES = FORM_TYPES | {"application/octet-stream"}


class JsonBodyLimits:
    """JSON bodies: at most ``max_bytes`` (413) and ``application/json`` when present (415).

    The body is read here (it is small by definition) and replayed to the app, so a chunked request
    without a Content-Length cannot slip past the cap.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or is_upload_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        path = scope["path"]
        allowed = (
            SAMPLE_TYPES
            if is_sample_path(path)
            else FORM_TYPES
            if accepts_forms(path)
            else {"application/json"}
        )
        if body and content_type not in allowed:
            response = problem(
                415,
                code="unsupported-media-type",
                detail=f"send the body as application/json (got {content_type or 'no content type'})",
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            code="payload-too-large",
            detail=f"JSON bodies are limited to {self.max_bytes // 1024} KiB (setting max_request_kb)",
        )
        await response(scope, receive, send)
