"""The Python client of the Data Sandbox HTTP API: one method per endpoint, typed errors.

>>> with SandboxClient("http://127.0.0.1:8000", "sbx_…") as client:  # doctest: +SKIP
...     job = client.submit_job("flu-study-2026", "SELECT district, COUNT(*) AS n FROM visits GROUP BY 1")
...     client.wait_for_job(job.job_id)
...     result = client.get_result(job.job_id)
...     print(result.table, result.report["reasons"])

Every failure the gateway reports arrives as ``application/problem+json`` and is raised here as
``ClientError`` with the problem's ``status``, stable ``code``, human ``detail`` and policy ``findings``.

The client is split by job: ``errors`` (``ClientError``, problem parsing), ``transport`` (the session,
429 retries), ``uploads`` (table parts), ``results`` (typed tables) and ``jobs`` (the job endpoints and
waiting). This module assembles ``SandboxClient`` and re-exports the names callers import from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Literal

from sandbox_api.client.errors import ClientError
from sandbox_api.client.jobs import TERMINAL_STATES, WAITING_STATES, JobsApi
from sandbox_api.client.open_data import OpenDataApi
from sandbox_api.client.results import Result, typed_frame
from sandbox_api.client.transport import MAX_RETRY_WAIT_S, RETRIES_ON_429, retry_wait
from sandbox_api.client.uploads import TableSource, upload_part
from sandbox_api.schemas import (
    AuditHeadOut,
    AuditPage,
    DatasetOut,
    DomainOut,
    Health,
    KeyRotated,
    PrincipalCreated,
    PrincipalOut,
    PrincipalStatus,
    Readiness,
    ReviewOut,
    ScopeCreated,
    ScopeOut,
    ScopeVersionOut,
    TokenCreated,
    TokenOut,
    TokensRevoked,
    VersionOut,
    VersionStored,
)
from sandbox_api.schemas_governance import AlertOut, ApplicationOut

__all__ = [
    "MAX_RETRY_WAIT_S",
    "RETRIES_ON_429",
    "TERMINAL_STATES",
    "WAITING_STATES",
    "ClientError",
    "Result",
    "SandboxClient",
    "TableSource",
    "retry_wait",
    "typed_frame",
]


class SandboxClient(JobsApi, OpenDataApi):
    """A session with the gateway at ``base_url`` as the principal holding ``token``.

    ``transport`` lets tests talk to an in-process app; everything else goes over HTTP. A request the
    gateway refuses with 429 (its queue is full; nothing was stored) is sent again after the
    ``Retry-After`` it names, up to ``retries_on_429`` times and at most ``max_retry_wait_s`` per wait;
    ``sleep`` is how the client waits (tests pass one that records). ``tls``: see ``client/tls.py``.
    The constructor and the request plumbing are ``transport.HttpSession``'s; the job endpoints are
    ``jobs.JobsApi``'s.
    """

    # -- identity and administration ----------------------------------------------------------------

    def health(self) -> Health:
        return self._model(Health, "GET", "/v1/health")

    def liveness(self) -> Health:
        """``GET /livez``: the gateway process answers."""
        return self._model(Health, "GET", "/livez")

    def readiness(self) -> Readiness:
        """``GET /readyz``: ready, or a ``ClientError`` (503) with one finding per failing check."""
        return self._model(Readiness, "GET", "/readyz")

    def metrics_text(self) -> str:
        """``GET /metrics`` (admin or auditor): the Prometheus text exposition."""
        return self._send("GET", "/metrics").text

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
                upload_part(table, source, stack=stack, on_read=on_progress)
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

    def get_version(self, domain: str, name: str, version: str) -> VersionOut:
        """One version with its state, review and (for stewards) its validation report."""
        return self._model(VersionOut, "GET", f"/v1/datasets/{domain}/{name}/versions/{version}")

    def publish_version(self, domain: str, name: str, version: str, *, reason: str = "") -> DatasetOut:
        """Publish a draft that another steward of the domain uploaded: it becomes the current version."""
        path = f"/v1/datasets/{domain}/{name}/versions/{version}/publish"
        return self._model(DatasetOut, "POST", path, json={"reason": reason})

    def return_version(self, domain: str, name: str, version: str, *, reason: str) -> DatasetOut:
        """Return a draft that another steward of the domain uploaded for correction, with reasons."""
        path = f"/v1/datasets/{domain}/{name}/versions/{version}/return"
        return self._model(DatasetOut, "POST", path, json={"reason": reason})

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

    # -- access applications (operators apply, policy officers draft or refuse) -----------------------

    def submit_application(
        self,
        datasets: Sequence[str],
        *,
        purpose: str,
        columns: Mapping[str, Sequence[str]],
        duration_days: int,
    ) -> ApplicationOut:
        body = {
            "datasets": list(datasets),
            "purpose": purpose,
            "columns": {k: list(v) for k, v in columns.items()},
            "duration_days": duration_days,
        }
        return self._model(ApplicationOut, "POST", "/v1/applications", json=body)

    def list_applications(self) -> list[ApplicationOut]:
        """Operators: their own applications; officers, admins and auditors: every one."""
        return self._models(ApplicationOut, "/v1/applications", key="applications")

    def get_application(self, application_id: str) -> ApplicationOut:
        return self._model(ApplicationOut, "GET", f"/v1/applications/{application_id}")

    def draft_application(
        self, application_id: str, document: str, *, fmt: Literal["yaml", "json"] = "yaml"
    ) -> ApplicationOut:
        """Draft a scope from an application; a second officer approves its scope version."""
        path = f"/v1/applications/{application_id}/draft"
        return self._model(ApplicationOut, "POST", path, json={"document": document, "format": fmt})

    def refuse_application(self, application_id: str, *, reason: str) -> ApplicationOut:
        path = f"/v1/applications/{application_id}/refuse"
        return self._model(ApplicationOut, "POST", path, json={"reason": reason})

    # -- alerts on unusual use (auditors) -------------------------------------------------------------

    def list_alerts(self, *, state: str | None = None, operator: str | None = None) -> list[AlertOut]:
        params = {"state": state, "operator": operator}
        return self._models(AlertOut, "/v1/alerts", key="alerts", params=params)

    def acknowledge_alert(self, alert_id: str, *, note: str) -> AlertOut:
        return self._model(AlertOut, "POST", f"/v1/alerts/{alert_id}/acknowledge", json={"note": note})

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
