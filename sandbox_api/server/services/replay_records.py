"""What replay compares with: the job's records as stored, and their checks against the receipt.

The receipt is the reference: its signature, the stored result hash, the stored queries, the catalog
recorded at submit and the scope document must all still be what it signed. A difference here is a
release that differs (tampering); a record that is gone is context replay cannot rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.errors import CryptoError
from crypto.profile import profile_named
from crypto.signing import SigningKeyRecord
from policies import PolicyError, Scope
from sandbox_api.errors import Conflict, NotFound
from sandbox_api.receipt_check import verify_receipt
from sandbox_api.receipt_format import RECEIPT_TYPE_V1, profile_of
from sandbox_api.server.services.keys import KeyLifecycle, Shredded
from sandbox_api.server.services.receipts import ReceiptService, query_facts
from sandbox_api.server.services.replay_report import Mismatch, context_missing
from sandbox_api.server.services.scopes import parse_stored, version_id_under
from sandbox_api.server.store.models import DatasetRow, DatasetVersionRow, JobRow, ResultRow, ScopeVersionRow


@dataclass(frozen=True)
class Recorded:
    """What the replay needs, read in one transaction."""

    row: JobRow
    receipt: dict[str, Any]
    stored_hash: str | None
    scope_document: str | None
    versions: dict[str, DatasetVersionRow]  # the versions the job read (the receipt's)
    destroyed: list[Shredded]
    dp_sealed: bytes | None = None  # a DP job's sealed exact values and noise


def load_recorded(session: Session, lifecycle: KeyLifecycle, job_id: str) -> Recorded:
    """Everything replay compares with, read in the caller's transaction (NotFound, or Conflict for a
    job that has no receipt)."""
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    receipt = ReceiptService.load(session, job_id)
    if receipt is None:
        raise Conflict(f"job {job_id} is {row.state}; only a released job with a receipt can be replayed")
    stored = session.get(ResultRow, job_id)
    scope = receipt.get("scope") or {}
    scope_row = session.execute(
        select(ScopeVersionRow).where(
            ScopeVersionRow.name == str(scope.get("name")),
            ScopeVersionRow.version_id == str(scope.get("version_id")),
        )
    ).scalar_one_or_none()
    versions: dict[str, DatasetVersionRow] = {}
    destroyed: list[Shredded] = []
    for dataset, version_id in dict(receipt.get("datasets") or {}).items():
        version = version_row(session, dataset, str(version_id))
        if version is None:
            continue
        versions[dataset] = version
        shred = lifecycle.shredded(session, dataset=dataset, version_id=str(version_id))
        if shred is not None:
            destroyed.append(shred)
    return Recorded(
        row=row,
        receipt=receipt,
        stored_hash=None if stored is None else stored.result_hash,
        scope_document=None if scope_row is None else scope_row.document,
        versions=versions,
        destroyed=destroyed,
        dp_sealed=None if stored is None else stored.dp_sealed,
    )


def check_records(recorded: Recorded, signing_keys: Sequence[SigningKeyRecord]) -> list[Mismatch]:
    """The receipt against its signature and against what the database holds for the job now."""
    receipt, row = recorded.receipt, recorded.row
    found: list[Mismatch] = []
    try:
        verify_receipt(receipt, {k.kid: k for k in signing_keys})
    except CryptoError as exc:
        found.append(Mismatch("receipt.signature", "valid", "invalid", exc.detail))
    facts = (receipt.get("result") or {}).get("hash")
    if recorded.stored_hash != facts:
        found.append(
            Mismatch(
                "result.stored_hash",
                facts,
                recorded.stored_hash,
                f"the stored result's hash {recorded.stored_hash} is not the signed {facts}",
            )
        )
    now = query_facts(row)
    signed = receipt.get("query") or {}
    for key in ("original_sha256", "rewritten_sha256"):
        if signed.get(key) != now[key]:
            found.append(
                Mismatch(
                    f"query.{key}",
                    signed.get(key),
                    now[key],
                    f"the stored query of job {row.id} no longer hashes to the signed query.{key}; "
                    "it was edited after the job ran",
                )
            )
    signed_catalog = (receipt.get("scope") or {}).get("catalog")
    if signed_catalog is not None and signed_catalog != dict(row.catalog_versions or {}):
        found.append(
            Mismatch(
                "scope.catalog",
                signed_catalog,
                row.catalog_versions,
                f"the catalog recorded for job {row.id} is not the one its receipt signed; the record "
                "was edited after the job ran",
            )
        )
    for dataset, version_id in sorted(dict(receipt.get("datasets") or {}).items()):
        if dataset not in recorded.versions:
            found.append(
                context_missing(
                    f"datasets.{dataset}",
                    f"version {version_id} of {dataset}, which the job read (the receipt names it), "
                    "is not in the catalog",
                    expected=version_id,
                )
            )
    return found


def recorded_scope(recorded: Recorded, mismatches: list[Mismatch]) -> Scope | None:
    """The scope version the job ran under, from its stored document; a mismatch if it is missing or was
    edited."""
    signed = recorded.receipt.get("scope") or {}
    name, version_id = signed.get("name"), signed.get("version_id")
    if recorded.scope_document is None:
        mismatches.append(
            context_missing(
                "scope.version_id",
                f"scope {name!r} has no stored version {version_id}",
                expected=version_id,
            )
        )
        return None
    try:
        scope = parse_stored(recorded.scope_document)
    except PolicyError as exc:
        mismatches.append(
            Mismatch(
                "scope.document",
                version_id,
                None,
                f"the stored document of scope {name!r} version {version_id} no longer parses "
                f"({exc.detail}); it was edited after the job ran",
            )
        )
        return None
    # The id under the profile that signed the receipt: SM3 for a gm receipt, SHA-256 otherwise.
    profile, _ = profile_of(recorded.receipt.get("type", RECEIPT_TYPE_V1))
    now = version_id_under(scope, profile_named(profile))
    if now != version_id:
        mismatches.append(
            Mismatch(
                "scope.version_id",
                version_id,
                now,
                f"the stored document of scope {name!r} version {version_id} now hashes to {now}; the "
                "scope was edited after the job ran",
            )
        )
    return scope


def version_row(session: Session, dataset: str, version_id: str) -> DatasetVersionRow | None:
    domain, name = dataset.split("/", 1)
    return session.execute(
        select(DatasetVersionRow)
        .join(DatasetRow)
        .where(
            DatasetRow.domain == domain, DatasetRow.name == name, DatasetVersionRow.version_id == version_id
        )
    ).scalar_one_or_none()
