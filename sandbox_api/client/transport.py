"""The HTTP plumbing under ``SandboxClient``: one session with the gateway, 429s retried after the
``Retry-After`` they name, transport failures and error responses turned into ``ClientError``, and
answers validated into the shared wire models."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Self

import httpx

from sandbox_api.client.errors import ClientError, M, problem_error, validate

# A 429 (the gateway's queue is full) is retried after the ``Retry-After`` it names, at most this many
# times and never waiting longer than this at once; then the ``ClientError`` reaches the caller.
RETRIES_ON_429: Final = 3
MAX_RETRY_WAIT_S: Final = 60.0
# When a 429 names no usable ``Retry-After``.
_DEFAULT_RETRY_WAIT_S: Final = 1.0


class HttpSession:
    """The connection, the 429 retries and the request helpers that every group of endpoints uses.

    ``SandboxClient`` documents the arguments; this class holds no endpoint of its own.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        retries_on_429: int = RETRIES_ON_429,
        max_retry_wait_s: float = MAX_RETRY_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._retries_on_429 = max(0, retries_on_429)
        self._max_retry_wait_s = max_retry_wait_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            # No token, no header: the probes (``/livez``, ``/readyz``) are answered without one.
            headers={"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {}),
            timeout=timeout,
            transport=transport,
            # ``tls``: a context that trusts the deployment's own authority and may carry a client
            # certificate (``client/tls.py``); None keeps the system's trust store.
            verify=True if tls is None else tls,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(self._retries_on_429):
            response = self._request(method, path, **kwargs)
            if response.status_code != 429:
                break
            self._sleep(retry_wait(response.headers.get("Retry-After"), limit=self._max_retry_wait_s))
        else:
            response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise problem_error(response)
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ClientError(0, "timeout", f"{method} {path} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise ClientError(
                0, "unreachable", f"cannot reach the gateway at {self.base_url}: {exc}"
            ) from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(
                response.status_code, "unexpected-response", f"{method} {path} did not answer JSON"
            ) from exc

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return validate(model, self._json(method, path, **kwargs), f"{method} {path}")

    def _models(
        self, model: type[M], path: str, *, key: str, params: Mapping[str, Any] | None = None
    ) -> list[M]:
        """A listing; the gateway may wrap it (``{"<key>": [...]}``) or not."""
        body = self._json("GET", path, params={k: v for k, v in (params or {}).items() if v is not None})
        items = body.get(key) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ClientError(200, "unexpected-response", f"GET {path} answered no list")
        return [validate(model, item, f"GET {path}") for item in items]


def retry_wait(header: str | None, *, limit: float, now: datetime | None = None) -> float:
    """Seconds to wait as a ``Retry-After`` header says (delay-seconds or an HTTP date), within
    ``[0, limit]``; one second when the header is missing or unreadable (RFC 9110 §10.2.3).

    >>> retry_wait("5", limit=60), retry_wait("600", limit=60), retry_wait(None, limit=60)
    (5.0, 60.0, 1.0)
    >>> retry_wait("Sun, 06 Dec 2026 04:00:10 GMT", limit=60, now=datetime(2026, 12, 6, 4, 0, tzinfo=UTC))
    10.0
    """
    if header is None:
        return float(min(_DEFAULT_RETRY_WAIT_S, limit))
    text = header.strip()
    try:
        seconds = float(text) if text.isdigit() else None
        if seconds is None:
            when = parsedate_to_datetime(text)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except (TypeError, ValueError):
        seconds = _DEFAULT_RETRY_WAIT_S
    return float(min(max(0.0, seconds), limit))
