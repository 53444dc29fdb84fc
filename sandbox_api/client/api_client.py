"""The Python client of the Data Sandbox HTTP API: one method per endpoint, typed errors.

>>> with SandboxClient("http://127.0.0.1:8000", "sbx_…") as client:  # doctest: +SKIP
...     job = client.submit_job("flu-study-2026", "SELECT district, COUNT(*) AS n FROM visits GROUP BY 1")
...     client.wait_for_job(job.job_id)
...     result = client.get_result(job.job_id)
...     print(result.table, result.report["reasons"])

Every failure the gateway reports arrives as ``application/problem+json`` and is raised here as
``ClientError`` with the problem's ``status``, stable ``code``, human ``detail`` and policy ``findings``.
"""

from __future__ import annotations

import io
import json
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeAlias, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from sandbox_api.job_types import Kind, Mode
from sandbox_api.schemas import (
    JOB_WAIT_MAX_S,
    AuditHeadOut,
    AuditPage,
    CancelOut,
    CheckOut,
    DatasetOut,
    DomainOut,
    Health,
    JobAccepted,
    JobOut,
    KeyRotated,
    PrincipalCreated,
    PrincipalOut,
    PrincipalStatus,
    ReleaseReportOut,
    ResultOut,
    ReviewOut,
    ScopeCreated,
    ScopeOut,
    ScopeVersionOut,
    TokenCreated,
    TokenOut,
    TokensRevoked,
    VersionStored,
)

if TYPE_CHECKING:
    # pandas and pyarrow are imported where tables are built, not here: a command line that only lists
    # jobs should not wait a second for them (``sandbox_api/cli`` imports this module).
    import pandas as pd
    import pyarrow as pa

M = TypeVar("M", bound=BaseModel)
TableSource: TypeAlias = "Path | str | pd.DataFrame | pa.Table"

# States after which a job never changes again, and ``withheld``, after which only a person moves it.
TERMINAL_STATES: Final = frozenset({"released", "rejected", "denied", "failed", "cancelled", "expired"})
WAITING_STATES: Final = TERMINAL_STATES | {"withheld"}

_PROBLEM_TYPE_PREFIX: Final = "urn:sandbox:"
# With a progress bar, each long-poll lasts at most this long, so the bar shows the state as it moves.
_PROGRESS_WAIT_S: Final = 1.0
# Added to a long-poll's read timeout: the gateway answers when the wait runs out, not before.
_WAIT_SLACK_S: Final = 10.0
# Back-off between polls when a gateway answers a long-poll at once (one that predates ``wait``).
_POLL_FIRST_S: Final = 0.005
_POLL_MAX_S: Final = 0.25
# A 429 (the gateway's queue is full) is retried after the ``Retry-After`` it names, at most this many
# times and never waiting longer than this at once; then the ``ClientError`` reaches the caller.
RETRIES_ON_429: Final = 3
MAX_RETRY_WAIT_S: Final = 60.0
# When a 429 names no usable ``Retry-After``.
_DEFAULT_RETRY_WAIT_S: Final = 1.0


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


@dataclass(frozen=True)
class Result:
    """A released result: the table, its suppression report and, when the gateway signed it, a receipt."""

    job_id: str
    table: pd.DataFrame
    report: ReleaseReportOut
    receipt: Mapping[str, Any] | None
    raw: ResultOut = field(repr=False)


def _parquet_bytes(source: pd.DataFrame | pa.Table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source, preserve_index=False)
    # Drop pandas' schema metadata: the gateway hashes canonical content, not how the frame was built.
    table = table.replace_schema_metadata(None)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class _ReportingReader(io.BufferedReader):
    """A table file that the multipart encoder reads in chunks, telling ``on_read`` each chunk's size
    (negative when the encoder rewinds it to send it again, after a 429)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(io.FileIO(path, "r"))
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        before = self.tell()
        after = super().seek(offset, whence)
        self._on_read(after - before)
        return after


def _upload_part(
    table: str, source: TableSource, *, stack: ExitStack, on_read: Callable[[int], None] | None
) -> tuple[str, tuple[str, bytes | io.BufferedReader, str]]:
    if not isinstance(source, Path | str):
        return table, (f"{table}.parquet", _parquet_bytes(source), "application/vnd.apache.parquet")
    path = Path(source)
    suffix = path.suffix.lower()
    media = "text/csv" if suffix == ".csv" else "application/vnd.apache.parquet"
    if on_read is None:
        return table, (path.name, path.read_bytes(), media)
    return table, (path.name, stack.enter_context(_ReportingReader(path, on_read)), media)


# The pandas dtype of each released column type (``ResultOut.column_types``): nullable integers and
# booleans, because a remainder row or an empty cell may be NULL in any column.
_DTYPES: Mapping[str, Any] = {
    "integer": "Int64",
    "float": "float64",
    "boolean": "boolean",
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns]",
    "string": "object",
}


def typed_frame(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], types: Sequence[str] | None
) -> pd.DataFrame:
    """A released table as a DataFrame whose dtypes follow the gateway's column types.

    >>> frame = typed_frame(["year", "n", "mean"], [["1965-01-01", 12, 3.5], [None, 20, None]],
    ...                     ["date", "integer", "float"])
    >>> [str(t) for t in frame.dtypes]
    ['datetime64[ns]', 'Int64', 'float64']
    >>> int(frame["year"].dt.year.iloc[0])
    1965
    """
    import pandas as pd

    frame = pd.DataFrame.from_records([list(row) for row in rows], columns=list(columns))
    if types is None or len(types) != len(columns):  # a result from before types were recorded
        return frame
    for index, kind in enumerate(types):
        dtype = _DTYPES.get(kind)
        if dtype is None or dtype == "object":
            continue
        values = frame.iloc[:, index]
        if kind in {"date", "timestamp"}:
            converted = pd.to_datetime(values, format="ISO8601").astype(dtype)
        else:
            converted = values.astype(dtype)
        frame.isetitem(index, converted.array)  # by position: two columns may share a name
    return frame


class SandboxClient:
    """A session with the gateway at ``base_url`` as the principal holding ``token``.

    ``transport`` lets tests talk to an in-process app; everything else goes over HTTP. A request the
    gateway refuses with 429 (its queue is full; nothing was stored) is sent again after the
    ``Retry-After`` it names, up to ``retries_on_429`` times and at most ``max_retry_wait_s`` per wait;
    ``sleep`` is how the client waits (tests pass one that records). ``tls``: see ``client/tls.py``.
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
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            # ``tls``: a context that trusts the deployment's own authority and may carry a client
            # certificate (``client/tls.py``); None keeps the system's trust store.
            verify=True if tls is None else tls,
        )

    # -- plumbing ----------------------------------------------------------------------------------

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
            raise _problem(response)
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
        return _validate(model, self._json(method, path, **kwargs), f"{method} {path}")

    def _models(
        self, model: type[M], path: str, *, key: str, params: Mapping[str, Any] | None = None
    ) -> list[M]:
        """A listing; the gateway may wrap it (``{"<key>": [...]}``) or not."""
        body = self._json("GET", path, params={k: v for k, v in (params or {}).items() if v is not None})
        items = body.get(key) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ClientError(200, "unexpected-response", f"GET {path} answered no list")
        return [_validate(model, item, f"GET {path}") for item in items]

    # -- identity and administration ----------------------------------------------------------------

    def health(self) -> Health:
        return self._model(Health, "GET", "/v1/health")

    def whoami(self) -> PrincipalOut:
        return self._model(PrincipalOut, "GET", "/v1/whoami")

    def create_domain(self, name: str, *, description: str = "") -> DomainOut:
        return self._model(DomainOut, "POST", "/v1/domains", json={"name": name, "description": description})

    def list_domains(self) -> list[DomainOut]:
        return self._models(DomainOut, "/v1/domains", key="domains")

    def rotate_domain_key(self, name: str) -> KeyRotated:
        """Admins: a new key-encryption key for the domain; every version's data key is re-wrapped."""
        return self._model(KeyRotated, "POST", f"/v1/domains/{name}/keys/rotate")

    def create_principal(
        self,
        name: str,
        role: str,
        *,
        domain: str | None = None,
        groups: Sequence[str] = (),
    ) -> PrincipalCreated:
        """Creates a principal; the answer holds its bearer token, shown this once."""
        body: dict[str, Any] = {"name": name, "role": role, "groups": list(groups)}
        if domain is not None:
            body["domain"] = domain
        return self._model(PrincipalCreated, "POST", "/v1/principals", json=body)

    def list_principals(self) -> list[PrincipalOut]:
        return self._models(PrincipalOut, "/v1/principals", key="principals")

    def create_token(
        self, name: str, *, token_name: str = "", expires_in_days: int | None = None
    ) -> TokenCreated:
        """A new token for ``name``, shown this once, with its id and expiry."""
        body = {"name": token_name, "expires_in_days": expires_in_days}
        return self._model(TokenCreated, "POST", f"/v1/principals/{name}/tokens", json=body)

    def list_tokens(self, name: str) -> list[TokenOut]:
        """The principal's tokens: ids, names and dates (the gateway never returns a secret again)."""
        return self._models(TokenOut, f"/v1/principals/{name}/tokens", key="tokens")

    def revoke_tokens(self, name: str) -> TokensRevoked:
        return self._model(TokensRevoked, "DELETE", f"/v1/principals/{name}/tokens")

    def revoke_token(self, name: str, token_id: str) -> TokenOut:
        return self._model(TokenOut, "DELETE", f"/v1/principals/{name}/tokens/{token_id}")

    def disable_principal(self, name: str) -> PrincipalStatus:
        return self._model(PrincipalStatus, "POST", f"/v1/principals/{name}/disable")

    def enable_principal(self, name: str) -> PrincipalStatus:
        return self._model(PrincipalStatus, "POST", f"/v1/principals/{name}/enable")

    # -- catalog --------------------------------------------------------------------------------------

    def create_dataset(self, domain: str, name: str, *, description: str = "") -> DatasetOut:
        body = {"domain": domain, "name": name, "description": description}
        return self._model(DatasetOut, "POST", "/v1/datasets", json=body)

    def upload_version(
        self,
        domain: str,
        name: str,
        *,
        manifest: Mapping[str, Any],
        tables: Mapping[str, TableSource],
        on_progress: Callable[[int], None] | None = None,
    ) -> VersionStored:
        """Uploads a new version: ``tables`` maps each table to a CSV/Parquet path or a DataFrame/Arrow
        table (encoded to Parquet in memory); ``manifest`` declares columns, classes and units.

        ``on_progress`` is told the size of each chunk of a file as it is sent (files given by path
        are then streamed rather than read into memory first), for a progress bar."""
        with ExitStack() as stack:
            files = [
                _upload_part(table, source, stack=stack, on_read=on_progress)
                for table, source in tables.items()
            ]
            return self._model(
                VersionStored,
                "POST",
                f"/v1/datasets/{domain}/{name}/versions",
                data={"manifest": json.dumps(manifest)},
                files=files,
            )

    def list_datasets(self) -> list[DatasetOut]:
        return self._models(DatasetOut, "/v1/datasets", key="datasets")

    def get_dataset(self, domain: str, name: str) -> DatasetOut:
        return self._model(DatasetOut, "GET", f"/v1/datasets/{domain}/{name}")

    def retire_version(self, domain: str, name: str, version: str) -> DatasetOut:
        return self._model(DatasetOut, "POST", f"/v1/datasets/{domain}/{name}/versions/{version}/retire")

    # -- scopes ---------------------------------------------------------------------------------------

    def create_scope(self, document: str, *, fmt: Literal["yaml", "json"] = "yaml") -> ScopeCreated:
        return self._model(ScopeCreated, "POST", "/v1/scopes", json={"document": document, "format": fmt})

    def list_scopes(self) -> list[ScopeOut]:
        return self._models(ScopeOut, "/v1/scopes", key="scopes")

    def get_scope(self, name: str) -> ScopeOut:
        return self._model(ScopeOut, "GET", f"/v1/scopes/{name}")

    def _decide(self, name: str, version_id: str, decision: str, reason: str) -> ScopeVersionOut:
        path = f"/v1/scopes/{name}/versions/{version_id}/{decision}"
        return self._model(ScopeVersionOut, "POST", path, json={"reason": reason})

    def approve_scope(self, name: str, version_id: str, *, reason: str = "") -> ScopeVersionOut:
        return self._decide(name, version_id, "approve", reason)

    def reject_scope(self, name: str, version_id: str, *, reason: str) -> ScopeVersionOut:
        return self._decide(name, version_id, "reject", reason)

    def revoke_scope(self, name: str, version_id: str, *, reason: str) -> ScopeVersionOut:
        return self._decide(name, version_id, "revoke", reason)

    # -- jobs -----------------------------------------------------------------------------------------

    def check_job(
        self,
        scope: str,
        sql: str | None = None,
        *,
        code: str | None = None,
        mode: Mode | str = Mode.REAL,
        cross_domain: bool = False,
    ) -> CheckOut:
        """Dry run: findings and rewritten SQL, nothing runs. Pass ``code`` for a Python job,
        ``cross_domain=True`` for SQL joining two domains' datasets as a private join."""
        body = _job_body(scope, sql, code, mode, cross_domain=cross_domain)
        return self._model(CheckOut, "POST", "/v1/jobs/check", json=body)

    def submit_job(
        self,
        scope: str,
        sql: str | None = None,
        *,
        code: str | None = None,
        mode: Mode | str = Mode.REAL,
        cross_domain: bool = False,
    ) -> JobAccepted:
        """Submits a SQL job, or a Python job with ``code`` (202); ``mode="mock"`` runs it on the mock
        twins; ``cross_domain=True`` runs SQL joining two domains' datasets as a private join, each
        domain computing its own part. A job the policy refuses raises ``ClientError`` with its findings."""
        body = _job_body(scope, sql, code, mode, cross_domain=cross_domain)
        return self._model(JobAccepted, "POST", "/v1/jobs", json=body)

    # -- output review (output checkers) ------------------------------------------------------------

    def list_reviews(self) -> list[ReviewOut]:
        """Withheld jobs waiting for this checker's decision (never the checker's own)."""
        return self._models(ReviewOut, "/v1/reviews", key="reviews")

    def get_review(self, job_id: str) -> ReviewOut:
        """One withheld job with its disclosure report and the withheld output."""
        return self._model(ReviewOut, "GET", f"/v1/reviews/{job_id}")

    def release_review(self, job_id: str, *, reason: str = "") -> ReviewOut:
        return self._model(ReviewOut, "POST", f"/v1/reviews/{job_id}/release", json={"reason": reason})

    def deny_review(self, job_id: str, *, reason: str) -> ReviewOut:
        return self._model(ReviewOut, "POST", f"/v1/reviews/{job_id}/deny", json={"reason": reason})

    def get_job(self, job_id: str) -> JobOut:
        return self._model(JobOut, "GET", f"/v1/jobs/{job_id}")

    def list_jobs(self, *, state: str | None = None, limit: int = 100, offset: int = 0) -> list[JobOut]:
        """Jobs, newest first (operators: their own); ``limit`` at most 1000, ``offset`` to page on."""
        params = {"state": state, "limit": limit, "offset": offset}
        return self._models(JobOut, "/v1/jobs", key="jobs", params=params)

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 300.0,
        progress: bool = False,
        on_change: Callable[[JobOut], None] | None = None,
    ) -> JobOut:
        """Waits until the job is finished (or withheld for review); ``ClientError`` with code
        ``wait-timeout`` if that takes longer than ``timeout`` seconds. ``on_change`` is called with the
        job each time its state changes (the first answer included), for a caller that shows phases.

        Long-polls ``GET /v1/jobs/{id}?wait=``: the gateway answers as soon as the job settles, so the
        answer arrives without polling delay."""
        from tqdm import tqdm

        watching = progress or on_change is not None
        deadline = time.monotonic() + timeout
        delay = _POLL_FIRST_S
        bar = tqdm(desc=f"job {job_id}", disable=not progress, bar_format="{desc} [{elapsed}]", leave=False)
        with bar:
            state = ""
            while True:
                wait = max(
                    0.0, min(deadline - time.monotonic(), _PROGRESS_WAIT_S if watching else JOB_WAIT_MAX_S)
                )
                asked = time.monotonic()
                job = self._long_poll(job_id, wait)
                if job.state != state:
                    state = job.state
                    bar.set_description_str(f"job {job_id}: {state}")
                    if on_change is not None:
                        on_change(job)
                else:
                    bar.refresh()
                if job.state in WAITING_STATES:
                    return job
                if time.monotonic() >= deadline:
                    raise ClientError(
                        0, "wait-timeout", f"job {job_id} is still {job.state} after {timeout:.0f} s"
                    )
                if time.monotonic() - asked < wait / 2:
                    # Answered long before the wait ran out and not settled: a gateway without
                    # long-polls. Poll with a growing pause instead of asking again at once.
                    time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
                    delay = min(delay * 1.25, _POLL_MAX_S)

    def _long_poll(self, job_id: str, wait: float) -> JobOut:
        """``GET /v1/jobs/{id}?wait=``, with a read timeout that outlasts the wait."""
        configured = self._http.timeout
        read = None if configured.read is None else max(configured.read, wait + _WAIT_SLACK_S)
        timeout = httpx.Timeout(
            connect=configured.connect, read=read, write=configured.write, pool=configured.pool
        )
        path = f"/v1/jobs/{job_id}"
        return self._model(JobOut, "GET", path, params={"wait": f"{wait:.3f}"}, timeout=timeout)

    def get_result(self, job_id: str) -> Result:
        body = self._json("GET", f"/v1/jobs/{job_id}/result")
        released = _validate(ResultOut, body, f"GET /v1/jobs/{job_id}/result")
        receipt = body.get("receipt") if isinstance(body, dict) else None
        return Result(
            job_id=released.job_id,
            table=typed_frame(released.columns, released.rows, released.column_types),
            report=_validate(ReleaseReportOut, released.report, f"the report of job {job_id}"),
            receipt=dict(receipt) if isinstance(receipt, Mapping) else None,
            raw=released,
        )

    def cancel_job(self, job_id: str) -> CancelOut:
        return self._model(CancelOut, "POST", f"/v1/jobs/{job_id}/cancel")

    # -- audit ----------------------------------------------------------------------------------------

    def audit_events(
        self,
        *,
        event: str | None = None,
        actor: str | None = None,
        since_seq: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """One page of audit events, oldest first, after ``since_seq``; ``event`` may be a prefix
        ending in '.' (``job.``). Pass the page's ``next_since_seq`` to read the next one."""
        params = {"event": event, "actor": actor, "since_seq": since_seq, "limit": limit}
        body = {key: value for key, value in params.items() if value is not None}
        return self._model(AuditPage, "GET", "/v1/audit/events", params=body)

    def audit_export(self) -> str:
        """The whole chain as JSON Lines, ready for ``sandbox audit verify``."""
        return self._send("GET", "/v1/audit/export").text

    def audit_head(self) -> AuditHeadOut:
        return self._model(AuditHeadOut, "GET", "/v1/audit/head")


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


def _validate(model: type[M], body: Any, what: str) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ClientError(200, "unexpected-response", f"{what} answered an unexpected body: {exc}") from exc


def _problem(response: httpx.Response) -> ClientError:
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


def _job_body(
    scope: str, sql: str | None, code: str | None, mode: Mode | str, *, cross_domain: bool = False
) -> dict[str, Any]:
    """The request body (an unknown ``mode`` is sent as it is: the gateway names the problem)."""
    if code is not None:
        return {"scope": scope, "kind": Kind.PYTHON.value, "code": code, "mode": str(mode)}
    if cross_domain:
        return {"scope": scope, "kind": Kind.CROSS_DOMAIN.value, "sql": sql, "mode": str(mode)}
    return {"scope": scope, "sql": sql, "mode": str(mode)}
