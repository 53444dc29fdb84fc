"""Request and response bodies of the HTTP API (pydantic at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox_api.job_types import Kind, Mode
from sandbox_api.roles import Role

# The longest long-poll a client may ask for (``GET /v1/jobs/{id}?wait=``), in seconds.
JOB_WAIT_MAX_S = 30

# Names of domains, principals, groups and datasets. Written into the OpenAPI document so that clients
# can check a name before sending it; the service checks it (and says what is allowed when it is not).
NAME_REGEX = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME: dict[str, Any] = {"pattern": NAME_REGEX}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# --- requests --------------------------------------------------------------------------------------
class DomainCreate(_In):
    name: str = Field(examples=["health-bureau"], json_schema_extra=_NAME)
    description: str = Field(default="", max_length=2000)


class PrincipalCreate(_In):
    name: str = Field(examples=["alice"], json_schema_extra=_NAME)
    role: Role
    domain: str | None = Field(
        default=None,
        description=(
            "required for stewards and domain administrators, optional for operators (the domain whose "
            "administrators manage them), forbidden otherwise"
        ),
    )
    groups: list[Annotated[str, Field(json_schema_extra=_NAME)]] = Field(default_factory=list, max_length=64)


class TokenCreate(_In):
    name: str = Field(default="", max_length=63, description="a label, e.g. the machine that holds it")
    expires_in_days: int | None = Field(
        default=None, ge=1, description="lifetime; unset: the deployment's `token_ttl_days`"
    )


class DatasetCreate(_In):
    domain: str
    name: str = Field(examples=["citizens"], json_schema_extra=_NAME)
    description: str = Field(default="", max_length=2000)


class ScopeCreate(_In):
    document: str = Field(max_length=200_000, description="the scope document (docs/design.md §4)")
    format: Literal["yaml", "json"] = "yaml"


class Decision(_In):
    reason: str = Field(default="", max_length=2000)


class JobRequest(_In):
    """A SQL job (``sql``) or a Python job (``kind: python`` with ``code``), on the real data or on the
    datasets' mock twins (``mode: mock``): moving from mock to real changes only ``mode``. A
    ``kind: cross-domain`` job is SQL joining two domains' datasets, run as a private join (real
    data only)."""

    scope: str = Field(examples=["flu-study-2026"])
    kind: Kind = Kind.SQL
    mode: Mode = Field(
        default=Mode.REAL, description="mock: run on synthetic twins, row-level output allowed, nothing spent"
    )
    sql: str | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        examples=["SELECT district, COUNT(*) FROM citizens GROUP BY district"],
    )
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="the Python job (kind: python); assign the answer to `result`",
        examples=["result = aggregate(citizens, by='district', aggs={'n': ('income', 'count')})"],
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobRequest:
        if self.kind == "sql" and (self.sql is None or self.code is not None):
            raise ValueError("a SQL job needs `sql` and no `code`")
        if self.kind == "python" and (self.code is None or self.sql is not None):
            raise ValueError("a Python job (kind: python) needs `code` and no `sql`")
        if self.kind == "cross-domain" and (self.sql is None or self.code is not None):
            raise ValueError("a cross-domain job needs `sql` and no `code`")
        if self.kind == "cross-domain" and self.mode == "mock":
            raise ValueError(
                "a cross-domain job runs on real data only; on mock twins, submit the same SQL as kind sql"
            )
        return self


# --- responses -------------------------------------------------------------------------------------
class Health(_Out):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(_Out):
    """``GET /readyz``: every check passed (a failing one answers 503 with the reasons)."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


class PrincipalOut(_Out):
    name: str
    role: Role
    domain: str | None
    groups: list[str]
    disabled: bool = False


class PrincipalCreated(_Out):
    principal: PrincipalOut
    token: str = Field(description="shown once; only its hash is stored")
    token_id: str = ""
    expires_at: datetime | None = None


class TokenCreated(_Out):
    principal: str
    token: str = Field(description="shown once; only its hash is stored")
    token_id: str = ""
    name: str = ""
    expires_at: datetime | None = None


class TokenOut(_Out):
    """A token as listed: its public id and dates, never the secret."""

    id: str
    principal: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class PrincipalStatus(_Out):
    principal: PrincipalOut
    jobs_cancelled: int = 0
    jobs_stopping: int = 0


class TokensRevoked(_Out):
    principal: str
    revoked: int


class DomainOut(_Out):
    name: str
    description: str
    kek_id: str


class KeyRotated(_Out):
    domain: str
    kek_id: str
    rewrapped_versions: int


class ColumnOut(_Out):
    name: str
    type: str
    cls: str = Field(alias="class", serialization_alias="class")
    domain: dict[str, Any] | None = None
    nullable: bool = Field(default=True, description="false: the manifest declared that no value is missing")


class TableOut(_Out):
    name: str
    unit: str
    row_count: int
    columns: list[ColumnOut]
    level: str | None = Field(
        default=None,
        description="the classification level the manifest declared (docs/governance.md); null: the "
        "deployment's default level",
    )


class ValidationCheckOut(_Out):
    check: str = Field(description="columns | unit_not_null | unit_unique | nulls | domain")
    column: str | None
    passed: bool
    detail: str


class ValidationTableOut(_Out):
    name: str
    rows: int
    distinct_units: int
    checks: list[ValidationCheckOut]


class ValidationReportOut(_Out):
    format: str
    passed: bool
    tables: list[ValidationTableOut]


class VersionOut(_Out):
    version_id: str
    state: Literal["draft", "returned", "active", "retired", "shredded"] = Field(
        description="draft: uploaded, awaiting a second steward; returned: sent back for correction; "
        "active: published (the most recently published active version is current); retired; shredded"
    )
    created_at: str
    created_by: str
    tables: list[TableOut]
    validation: ValidationReportOut | None = Field(
        default=None,
        description="what was checked against the manifest at upload (stewards and admins only; null "
        "for operators and for versions stored before reports existed)",
    )
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    review_reason: str = Field(default="", description="the reviewer's note; for a returned version, why")
    published_at: str | None = None


class DatasetOut(_Out):
    domain: str
    name: str
    description: str
    created_at: str
    current_version: str | None
    versions: list[VersionOut]


class VersionStored(_Out):
    dataset: str
    created: bool = Field(description="false when identical content was already stored (idempotent upload)")
    version: VersionOut


class ScopeVersionOut(_Out):
    name: str
    version_id: str
    state: Literal["pending", "approved", "rejected", "revoked", "superseded"]
    author: str
    approvals: list[str]
    required_approvals: int
    reason: str
    created_at: str
    decided_at: str | None
    active: bool
    inactive_reason: str | None
    document: dict[str, Any]


class ScopeOut(_Out):
    name: str
    active_version: str | None
    versions: list[ScopeVersionOut]


class ScopeCreated(_Out):
    created: bool = Field(description="false when this exact version already existed")
    version: ScopeVersionOut


class FindingOut(_Out):
    rule: str
    message: str
    fragment: str = ""


class ProblemOut(_Out):
    """An error, as ``application/problem+json`` (RFC 9457): ``code`` is stable and is what a program
    should branch on; ``detail`` says what went wrong and what to do; ``findings`` lists every reason.
    Routes add members (``job_id`` and ``state`` of a stored, rejected job; ``retry_after`` seconds beside
    the ``Retry-After`` header); unknown members may appear and should be ignored."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:sandbox:<code>", examples=["urn:sandbox:not-found"])
    title: str = Field(description="the HTTP status in words")
    status: int = Field(description="the HTTP status, repeated")
    detail: str = Field(description="what went wrong and what to do, for a person")
    code: str = Field(description="stable, for programs (see docs/api.md)", examples=["not-found"])
    findings: list[FindingOut] = Field(description="every reason, not the first")
    job_id: str | None = Field(default=None, description="job-rejected: the stored, rejected job")
    state: str | None = Field(default=None, description="job-rejected: the job's state (rejected)")
    retry_after: int | None = Field(
        default=None, description="queue-full, quota-exceeded: seconds to wait (also the Retry-After header)"
    )


class CheckOut(_Out):
    allowed: bool
    findings: list[FindingOut]
    rewritten_sql: str | None = Field(
        description="the rewritten SQL; for Python and mock jobs, the SELECTs that build the job's tables"
    )
    applied: list[str]
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    dp: dict[str, Any] | None = Field(
        default=None,
        description="differential privacy: the epsilon (and delta) the job would spend, the mechanism, per "
        "noised column its noise scale and 95% interval half-width, and the clamped inputs",
    )
    budget_left: dict[str, float] | None = Field(
        default=None, description="differential privacy: the epsilon and delta you have left in this scope"
    )


class DpBudgetOut(_Out):
    """What a job spent of its owner's differential-privacy budget, and what the owner has left.

    Ledger arithmetic only: charges follow from the scope's settings and the query's shape, never from
    the data, so these figures tell nothing about any person (the dry run shows the same ones)."""

    scope: str = Field(description="the scope lineage the job spent from")
    period: int = Field(
        description="the refresh period of the ledger entry (0: a budget that never refreshes)"
    )
    spent: dict[str, float] = Field(
        description="epsilon and delta this job spent (0 once refunded: the job failed or was cancelled)"
    )
    refunded: bool = Field(description="whether the charge was given back")
    limit: dict[str, float] = Field(description="epsilon and delta of the owner's budget in this entry")
    left: dict[str, float] = Field(
        description="epsilon and delta the owner has left in this entry now (after this job and any since)"
    )


class JobAccepted(_Out):
    job_id: str
    state: str
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    dp_budget: DpBudgetOut | None = Field(
        default=None, description="differential privacy: what this job spent and what you have left after it"
    )


class JobReviewOut(_Out):
    """The output review of a withheld job, as its record stands."""

    model_config = ConfigDict(extra="allow")

    required: int = Field(description="distinct output checkers who must release it")
    decisions: list[DecisionOut]
    flags: int | None = Field(default=None, description="small cells the disclosure report flagged")


class JobOut(_Out):
    job_id: str
    owner: str
    scope: str
    scope_version: str
    state: str
    reason: str
    findings: list[FindingOut]
    sql: str
    rewritten_sql: str | None
    applied: list[str]
    dataset_versions: dict[str, str]
    attempts: int
    timings: dict[str, float] = Field(
        description="seconds per phase; empty for operators (how long a phase took can depend on data "
        "they may not see); admins and auditors see it"
    )
    result_hash: str | None
    created_at: str
    updated_at: str
    kind: Kind = Kind.SQL
    mode: Mode = Mode.REAL
    code: str | None = Field(default=None, description="a Python job's code")
    review: JobReviewOut | None = Field(default=None, description="output review of a withheld job")
    dp_budget: DpBudgetOut | None = Field(
        default=None,
        description="differential privacy: what this job spent and what its owner has left in the scope "
        "(in the submit answer and reads of one job; not in listings)",
    )


class JobList(_Out):
    jobs: list[JobOut]


class CancelOut(_Out):
    job: JobOut
    stopping: bool = Field(description="true when the job was running and its sandbox is being stopped")


class ReleaseReportOut(BaseModel):
    """The report released with a result (``services/release_report.ReleaseReport``), as a client
    reads it: ``rows_released`` and ``reasons`` always, the rest where the release path reports it.
    Unknown members are kept: the receipt signs the report as the gateway wrote it."""

    model_config = ConfigDict(extra="allow")

    rows_released: int
    reasons: list[str]
    rows_in: int | None = None
    cells_rounded: int | None = None
    rows_capped: int | None = None
    min_units: int | None = None
    mock: bool | None = None
    remainder: bool | None = None
    reviewed_by: list[str] | None = None


class ResultOut(_Out):
    job_id: str
    scope: str
    scope_version: str
    dataset_versions: dict[str, str]
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    result_hash: str
    report: ReleaseReportOut = Field(
        description="the suppression report: what was dropped, merged, rounded, why"
    )
    kind: Kind = Kind.SQL
    mode: Mode = Field(default=Mode.REAL, description="mock: computed on synthetic twins")
    output: dict[str, Any] | None = Field(
        default=None,
        description="a Python job's released object (`summary`, plain data), `printed` output and the "
        "disclosure `report` the checker saw",
    )
    receipt: ReceiptOut | None = Field(
        default=None,
        description="the signed receipt (also at GET /v1/jobs/{id}/receipt); verify it offline with "
        "`sandbox receipt verify`",
    )
    column_types: list[Literal["integer", "float", "boolean", "date", "timestamp", "string"]] | None = Field(
        default=None,
        description="each column's type, in order (dates are `YYYY-MM-DD`, timestamps ISO 8601); absent "
        "for results released before types were recorded",
    )


class AuditEventOut(_Out):
    seq: int
    at: str
    event: str
    actor: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    format: str = Field(description="how the hash is computed: data-sandbox/audit-event/v2 (RFC 8785) or v1")


class AuditPage(_Out):
    events: list[AuditEventOut]
    next_since_seq: int | None = Field(description="pass as since_seq for the next page; null at the end")


class CheckpointOut(_Out):
    seq: int
    head_hash: str
    at: str
    kid: str
    signature: str
    type: str = Field(description="what is signed: data-sandbox/audit-checkpoint/v2 (RFC 8785) or v1")


class SigningKeyOut(_Out):
    kid: str
    public: str
    not_before: str
    not_after: str | None
    state: str


class AuditHeadOut(_Out):
    count: int
    last_seq: int | None
    hash: str
    at: str | None
    checkpoint: CheckpointOut | None = Field(description="the head, signed now (keep a copy elsewhere)")
    signing_keys: list[SigningKeyOut]


# --- output review -----------------------------------------------------------------------------------


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        default="", max_length=2000, description="required to deny; recorded in the audit log"
    )


class DecisionOut(BaseModel):
    checker: str
    decision: Literal["release", "deny"]
    reason: str
    at: str


class ReviewOut(BaseModel):
    job_id: str
    owner: str
    scope: str
    scope_version: str
    kind: Kind
    mode: Mode
    state: str
    reason: str
    code: str | None
    sql: str
    required_checkers: int = Field(description="distinct checkers who must release it")
    decisions: list[DecisionOut]
    report: dict[str, Any] = Field(
        description="automatic disclosure report: {flagged, findings: [{rule, severity, message, where}]}"
    )
    created_at: str
    withheld_at: str
    output: dict[str, Any] | None = Field(
        default=None,
        description="only when reading one review: the withheld `table` ({columns, rows}), object `summary` "
        "(plain data) and `printed` output",
    )


class ReviewList(BaseModel):
    reviews: list[ReviewOut]


# --- evidence: receipts, bundles, replay -------------------------------------------------------------


class ReceiptOut(BaseModel):
    """A signed receipt; unknown members are kept, since every member but ``signature`` is signed."""

    model_config = ConfigDict(extra="allow")

    type: str
    job_id: str
    operator: str
    scope: dict[str, Any]
    datasets: dict[str, str]
    query: dict[str, Any]
    engine: dict[str, str]
    result: dict[str, Any]
    suppression: dict[str, Any]
    audit_head: dict[str, Any] | None
    signed_at: str
    kid: str
    signature: str = Field(description="Ed25519 over the canonical JSON of every other member, hex")


class WitnessSignatureOut(_Out):
    witness: str
    seq: int
    head_hash: str
    kid: str
    signature: str
    type: str


class WitnessKeyOut(_Out):
    name: str
    domain: str | None
    kid: str
    algorithm: str
    public_key: str = Field(description="hex")


class AuditBundleOut(BaseModel):
    format: str
    exported_at: str
    exported_by: str
    head: dict[str, Any] = Field(description="{seq, hash, checkpoint}: the head signed at export time")
    events: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    signing_keys: list[dict[str, Any]]
    witnesses: list[WitnessKeyOut] = Field(
        default_factory=list, description="the registered audit witnesses and their public keys"
    )
    witness_signatures: list[WitnessSignatureOut] = Field(
        default_factory=list, description="their co-signatures of the checkpoints (crypto.witness)"
    )
    witnesses_required: list[str] = Field(
        default_factory=list, description="the deployment's audit_witnesses_required"
    )


class MismatchOut(BaseModel):
    field: str
    expected: Any
    actual: Any
    message: str
    kind: str = Field(
        description="release-differs (the evidence and the replay disagree: an incident) | "
        "context-unavailable (replay could not rebuild the job's context: a replay defect)"
    )


class ShreddedOut(BaseModel):
    dataset: str
    version_id: str
    shredded_at: str
    shredded_by: str
    reason: str


class ReplayOut(BaseModel):
    job_id: str
    outcome: str = Field(description="match | mismatch | data-destroyed | not-replayable")
    match: bool
    message: str
    receipt_kid: str
    expected_result_hash: str
    actual_result_hash: str | None
    mismatches: list[MismatchOut]
    destroyed: list[ShreddedOut]
    notes: list[str]
    engine: dict[str, str]
    replayed_at: str
    replayed_by: str
    kind: str | None = Field(
        description="of a mismatch: release-differs (an incident: tampering or non-determinism) or "
        "context-unavailable (replay could not rebuild the context; the message says what is missing); "
        "release-differs wins when both occur; null otherwise"
    )


# --- keys --------------------------------------------------------------------------------------------


class PublishedKeyOut(BaseModel):
    """One published signing key (``crypto.signing.SigningKeyRecord.to_dict``)."""

    model_config = ConfigDict(extra="allow")

    kid: str
    public: str = Field(description="the Ed25519 public key, standard base64")
    not_before: str
    not_after: str | None = Field(description="null while the key is current")
    state: str


class SigningKeysOut(BaseModel):
    format: str
    keys: list[PublishedKeyOut]


class SigningKeyRotated(BaseModel):
    kid: str
    not_before: str
    retired: str | None = Field(description="the previous key, valid until not_before, still published")


class ShredRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class ShredOut(BaseModel):
    dataset: str
    version_id: str
    state: str = "shredded"
    shredded_at: str
    shredded_by: str
    reason: str


# --- open data: released results published to a public catalog (services/open_data.py) -------------


class PublicationCreate(_In):
    job_id: str = Field(min_length=32, max_length=32, description="a released job of yours")
    title: str = Field(min_length=1, max_length=200, examples=["Influenza visits by district, 2026"])
    description: str = Field(
        default="", max_length=4000, description="what the table shows and how to read it, for the public"
    )


class PublicationDecision(_In):
    reason: str = Field(
        default="",
        max_length=2000,
        description="required to refuse or withdraw; shown to the proposer and recorded in the audit log",
    )


class PublicationOut(_Out):
    """A proposal and where it stands; what reviewers and the proposer see."""

    publication_id: str
    job_id: str
    title: str
    description: str
    state: Literal["proposed", "published", "refused", "withdrawn"]
    scope: str
    purpose: str
    proposed_by: str
    proposed_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    withdrawn_by: str | None = None
    withdrawn_at: str | None = None
    withdrawal_reason: str | None = None


class PublicationList(_Out):
    publications: list[PublicationOut]


class OpenDataEntry(_Out):
    """One published table as the public catalog lists it."""

    publication_id: str
    title: str
    description: str
    purpose: str = Field(description="the purpose of the scope the result was computed under")
    published_at: str
    row_count: int
    columns: list[str]


class OpenDataList(_Out):
    entries: list[OpenDataEntry]


class OpenDataOut(OpenDataEntry):
    """One published table in full, with the signed receipt that lets anyone check it offline."""

    job_id: str
    rows: list[list[Any]]
    column_types: list[str] | None = None
    output: dict[str, Any] | None = None
    result_hash: str
    receipt: ReceiptOut | None = Field(
        default=None,
        description="the gateway's signed receipt; verify with the public keys at GET /v1/keys/signing",
    )


# --- audit witnesses ---------------------------------------------------------------------------------


class WitnessIn(_In):
    name: str = Field(pattern=NAME_REGEX, description="the witness's name, as its co-signatures carry it")
    domain: str | None = Field(
        None, pattern=NAME_REGEX, description="the domain whose witness this is; null: an outside witness"
    )
    public_key: str = Field(description="its public key in hex: 32 bytes (Ed25519) or 65 bytes (SM2)")


class WitnessOut(_Out):
    name: str
    domain: str | None
    kid: str
    algorithm: str
    public_key: str = Field(description="hex")
    registered_by: str
    registered_at: str


class WitnessSignatureIn(_In):
    witness: str = Field(pattern=NAME_REGEX)
    seq: int = Field(ge=0)
    head_hash: str = Field(min_length=64, max_length=64)
    kid: str = Field(max_length=32)
    signature: str = Field(max_length=512, description="hex")
    type: str = Field(max_length=64, description="data-sandbox/audit-witness/v1 (Ed25519) or .../gm/v1")


class WitnessedCheckpointOut(_Out):
    checkpoint: CheckpointOut
    witness_signatures: list[WitnessSignatureOut] = Field(description="co-signatures (crypto.witness)")
    missing: list[str] = Field(description="required witnesses (audit_witnesses_required) not yet signed")


class WitnessedCheckpointPage(_Out):
    required: list[str] = Field(description="the deployment's audit_witnesses_required")
    checkpoints: list[WitnessedCheckpointOut]
    next_since_seq: int | None = Field(description="pass as since_seq for the next page; null at the end")
