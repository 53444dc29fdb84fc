"""Tables of the metadata database. Alembic's initial revision mirrors these exactly (a test checks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names so migrations behave the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PrincipalRow(Base):
    __tablename__ = "principals"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    domain: Mapped[str | None] = mapped_column(String(64), ForeignKey("domains.name"), nullable=True)
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    # Set while the principal is disabled: none of its tokens (nor its single sign-on identity) work.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class TokenRow(Base):
    __tablename__ = "tokens"

    # The first 12 hex digits of the hash are the token's public id (listed, revoked, logged).
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal: Mapped[str] = mapped_column(String(64), ForeignKey("principals.name"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    name: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # NULL only for tokens issued before expiries existed: they expire ``token_ttl_days`` after creation.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DomainRow(Base):
    __tablename__ = "domains"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kek_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("domain", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(64), ForeignKey("domains.name"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    # The dataset's key for the released-cohort ledger's cross-domain tokens, wrapped under the domain's
    # KEK: the same across versions, so that cells over two versions of the dataset are compared.
    # NULL until first needed for a dataset created before it existed (services/catalog.py).
    ledger_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version_id: Mapped[str] = mapped_column(String(64))
    # Declared tables: [{name, unit, row_count, columns: [{name, type, class, domain}]}].
    manifest: Mapped[list[Any]] = mapped_column(JSON)
    # {table: [{path, aad}]}: where the encrypted parts live, relative to the data directory.
    layout: Mapped[dict[str, Any]] = mapped_column(JSON)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    key_aad: Mapped[str] = mapped_column(String(300))
    # draft | returned | active (published) | retired: see services/catalog_review.py
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What was checked against the manifest at upload; NULL for versions stored before the workflow.
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    review_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When it became live; the most recently published active version is the current one.
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScopeVersionRow(Base):
    __tablename__ = "scope_versions"
    __table_args__ = (UniqueConstraint("name", "version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version_id: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # canonical JSON of the scope
    author: Mapped[str] = mapped_column(String(64))
    # pending | approved | rejected | revoked | superseded
    state: Mapped[str] = mapped_column(String(16))
    approvals: Mapped[list[Any]] = mapped_column(JSON, default=list)  # names of approving officers
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(128))
    scope_version: Mapped[str] = mapped_column(String(64))
    sql: Mapped[str] = mapped_column(Text)
    rewritten_sql: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    applied: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dataset_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{dataset, table, sql_name}]: the tables the rewritten SQL reads, from policies.prepare.
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    uses_keyed_hash: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Revision 0003: Python jobs, mock mode and output review.
    kind: Mapped[str] = mapped_column(String(8), default="sql", server_default="sql")  # sql | python
    mode: Mapped[str] = mapped_column(String(8), default="real", server_default="real")  # real | mock
    code: Mapped[str | None] = mapped_column(Text, nullable=True)  # a Python job's code
    # While withheld and after: {required, decisions: [{checker, decision, reason, at}], flags}.
    review: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Revision 0005: {"domain/dataset": version id} of EVERY dataset the scope names, current at submit
    # (the catalog the job was checked against, read or not), so a replay rebuilds exactly that
    # catalog. NULL for jobs stored before it.
    catalog_versions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Revision 0004: what the release rules need, recorded at submit (services/release.py ReleaseFacts):
    # {additive_columns: [...], disjoint_groups: bool}; NULL for jobs stored before it.
    release_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class WithheldRow(Base):
    """What a withheld job produced, sealed like a result; only output checkers read it before release."""

    __tablename__ = "withheld_outputs"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)  # disclosure (and suppression) report
    required_checkers: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewDecisionRow(Base):
    """One output checker's decision on one withheld job (a checker decides a job at most once)."""

    __tablename__ = "review_decisions"
    __table_args__ = (UniqueConstraint("job_id", "checker"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), index=True)
    checker: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # release | deny
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResultRow(Base):
    """One row per released job: the primary key is what makes a second release impossible."""

    __tablename__ = "results"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    result_hash: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Differential privacy: the exact values and the noise (``policies.dp.replay.sealed_record``),
    #: sealed under the results key with ``dp_record_aad(job id)``, for replay only; NULL otherwise.
    dp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, default=None)


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # How the event is hashed (crypto.audit): rows from before migration 0009 are all v1.
    format: Mapped[str] = mapped_column(String(40), server_default="data-sandbox/audit-event/v1")


class AuditHeadRow(Base):
    """A single row (id=1) locked by every append, so appends serialize on PostgreSQL as on SQLite."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signed statement of the chain head at ``seq`` (crypto.audit.Checkpoint as one JSON line)."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    line: Mapped[str] = mapped_column(Text)


class AuditWitnessRow(Base):
    """A witness of the audit chain (migration 0014): a key pair held outside the gateway."""

    __tablename__ = "audit_witnesses"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    domain: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: an outside witness
    kid: Mapped[str] = mapped_column(String(32))
    algorithm: Mapped[str] = mapped_column(String(16))
    public: Mapped[str] = mapped_column(Text)  # hex
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditWitnessSignatureRow(Base):
    """A witness's co-signature of the checkpoint at ``seq`` (crypto.witness.WitnessSignature JSON)."""

    __tablename__ = "audit_witness_signatures"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(64), ForeignKey("audit_witnesses.name"), primary_key=True)
    line: Mapped[str] = mapped_column(Text)


class ReceiptRow(Base):
    """The signed receipt of a released job (migration 0002), written in the release transaction."""

    __tablename__ = "receipts"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(32), index=True)
    # The whole receipt (signed fields and the signature) as canonical JSON: served byte for byte.
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShredRow(Base):
    """Who crypto-shredded a dataset version, when and why (migration 0002); the key itself is gone."""

    __tablename__ = "dataset_shreds"

    version_row_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    shredded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    shredded_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")


class DpLedgerRow(Base):
    """Differential-privacy budget spent per scope lineage, grantee and refresh period (migration 0004).

    The lineage is the scope's name and sorted datasets (``policies.dp.budget``), never a version id, so
    no new version, revocation or re-grant resets it. Amounts are integers (epsilon in 1e-9, delta in
    1e-18 units) changed only by conditional UPDATEs, so concurrent gateways cannot overspend.
    """

    __tablename__ = "dp_budget_ledger"
    __table_args__ = (UniqueConstraint("lineage", "grantee", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lineage: Mapped[str] = mapped_column(String(64))
    scope_name: Mapped[str] = mapped_column(String(128))
    datasets: Mapped[list[str]] = mapped_column(JSON)
    grantee: Mapped[str] = mapped_column(String(64))
    period: Mapped[int] = mapped_column(Integer)
    spent_epsilon: Mapped[int] = mapped_column(BigInteger)
    spent_delta: Mapped[int] = mapped_column(BigInteger)


class DpChargeRow(Base):
    """One job's charge against a ledger entry, and its refund (migration 0004).

    Keyed by job id without a foreign key to ``jobs``: the charge is taken before the job is queued, in
    whatever transaction the caller chooses; a charge for a job id that never ran is refunded.
    """

    __tablename__ = "dp_budget_charges"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("dp_budget_ledger.id"), index=True)
    epsilon: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(BigInteger)
    charged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    refund_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class CohortLedgerHeadRow(Base):
    """The released-cohort ledger of one scope lineage (migration 0007): its last batch.

    Locked by every check of the lineage, so that two jobs released at once are checked one after the
    other (each against the other's cohorts).
    """

    __tablename__ = "cohort_ledger_heads"

    lineage: Mapped[str] = mapped_column(String(64), primary_key=True)  # policies.cohorts.Lineage.id
    scope: Mapped[str] = mapped_column(String(128))
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CohortLedgerBatchRow(Base):
    """The cohorts one job added to a lineage's ledger, sealed (AES-256-GCM, bound to lineage and seq).

    One row per checked job, even when it added nothing (every cell withheld or a repeat): ``seq``
    orders the checks, so a replay can decide against the ledger as it stood before that job.
    """

    __tablename__ = "cohort_ledger_batches"
    __table_args__ = (UniqueConstraint("lineage", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lineage: Mapped[str] = mapped_column(String(64), ForeignKey("cohort_ledger_heads.lineage"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    cohorts: Mapped[int] = mapped_column(Integer)  # how many sketches the sealed batch holds
    # Union/complement combinations past the per-cohort budget, left unchecked (for auditors).
    unchecked: Mapped[int] = mapped_column(Integer, default=0)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PublicationRow(Base):
    """A released result proposed for the public open-data catalog (services/open_data.py).

    ``state`` moves proposed -> published | refused, and published -> withdrawn; nothing else. A job
    has at most one publication that is not refused or withdrawn (checked in the service, under the
    job's row lock), so a result appears in the catalog once.
    """

    __tablename__ = "publications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)  # proposed | published | refused | withdrawn
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AccessApplicationRow(Base):
    """An operator's application for access (migration 0012), and what became of it.

    ``state`` is the application's own step (submitted, drafted, refused); once drafted, the outcome is
    the state of the scope version it became (services/applications.py), so four-eyes approval stays
    the scope workflow's.
    """

    __tablename__ = "access_applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    applicant: Mapped[str] = mapped_column(String(64), index=True)
    datasets: Mapped[list[Any]] = mapped_column(JSON)  # ["domain/dataset", ...]
    purpose: Mapped[str] = mapped_column(Text)
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"domain/dataset": [column, ...]}
    duration_days: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # submitted | drafted | refused
    scope_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    scope_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    drafted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageAlertRow(Base):
    """One alert on unusual use (migration 0012): the rule, whom it is about, and its evidence."""

    __tablename__ = "usage_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))
    operator: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    # {"jobs": [job ids], "events": [audit seqs], "figures": {name: number}}: what the rule saw.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # open | acknowledged
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class ConsoleSignOutRow(Base):
    """A console session signed out before it expired (console/session.py ``SignedOut``): every gateway
    on this database refuses a copy of its cookie. The nonce is kept only as its SHA-256."""

    __tablename__ = "console_signouts"

    nonce_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
