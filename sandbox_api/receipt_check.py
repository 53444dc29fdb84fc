"""Checking a receipt: its signature, its key's validity when it signed, and a served result against it.

Shared by the offline verifier (``sandbox_api.client.verify``, which re-exports it) and by the gateway's
replay, which checks the stored receipt before it compares anything with it. Both rooms import it from
here, so the server never imports the client. Pure: JSON values and trusted keys in, a report or a
``crypto`` error out:

- :class:`crypto.errors.IntegrityError`: an edited receipt or result, an unknown format;
- :class:`crypto.errors.UnknownKey`: a signature by a key that is not among the trusted keys;
- :class:`crypto.errors.KeyNotValid`: a signature dated outside its key's validity period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crypto.errors import IntegrityError, KeyNotValid, UnknownKey
from crypto.signing import SigningKeyRecord, verify
from sandbox_api.receipt_format import (
    FORMS,
    RECEIPT_FIELDS,
    RECEIPT_TYPE_V2,
    Canonical,
    content_sha256,
    form_of,
    output_sha256,
    profile_of,
    row_digest,
    signed_bytes,
)

TrustedKeys = Mapping[str, SigningKeyRecord]


@dataclass(frozen=True)
class ReceiptReport:
    job_id: str
    kid: str
    signed_at: str
    result_hash: str
    result_checked: bool
    #: The profile that signed the receipt (``international`` or ``gm``), from its ``type``.
    profile: str = "international"


def moment(text: object, what: str) -> datetime:
    """An ISO timestamp (UTC when it names no zone); :class:`IntegrityError` names ``what`` otherwise.

    >>> moment("2026-01-01T00:00:00", "signed_at").isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise IntegrityError(f"{what} is not an ISO timestamp: {text!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def verify_receipt(
    receipt: Mapping[str, Any], keys: TrustedKeys, *, result: Mapping[str, Any] | None = None
) -> ReceiptReport:
    """Check the receipt's signature and key validity, and (if given) that ``result`` is what it signed.

    ``result`` is the body of ``GET /v1/jobs/{id}/result`` (at least ``columns`` and ``rows``).
    """
    missing = [f for f in RECEIPT_FIELDS if f not in receipt]
    if missing:
        raise IntegrityError(f"receipt is malformed: it lacks {', '.join(missing)}")
    job = str(receipt["job_id"])
    if receipt["type"] not in FORMS:
        known = " or ".join(sorted(FORMS))
        raise IntegrityError(f"receipt for job {job}: type {receipt['type']!r} is not {known}")
    profile, algorithm = profile_of(receipt["type"])
    if profile != "international" and receipt.get("profile") != profile:
        raise IntegrityError(f"receipt for job {job}: a {receipt['type']} receipt says profile {profile}")
    kid = str(receipt["kid"])
    record = keys.get(kid)
    if record is None:
        known = ", ".join(sorted(keys)) or "none"
        raise UnknownKey(
            f"receipt for job {job} is signed by key {kid}, which is not a trusted key (trusted: {known})"
        )
    if record.algorithm != algorithm:
        raise IntegrityError(
            f"receipt for job {job}: a {receipt['type']} receipt is signed with {algorithm}, but key {kid} "
            f"is an {record.algorithm} key"
        )
    try:
        signature = bytes.fromhex(str(receipt["signature"]))
        verify(record.public, signed_bytes(receipt), signature, algorithm=algorithm)
    except (ValueError, IntegrityError) as exc:
        raise IntegrityError(
            f"receipt for job {job}: signature does not verify under key {kid}; the receipt was edited "
            "after it was signed (or signed by someone else)"
        ) from exc
    signed_at = moment(receipt["signed_at"], f"receipt for job {job}: signed_at")
    try:
        record.require_valid_at(signed_at)
    except KeyNotValid as exc:
        raise KeyNotValid(
            f"receipt for job {job}: {exc.detail}; the key was not valid when it signed"
        ) from exc
    facts = receipt["result"]
    if result is not None:
        check_result(job, facts, result=result, form=form_of(receipt["type"]))
    return ReceiptReport(
        job_id=job,
        kid=kid,
        signed_at=signed_at.isoformat(),
        result_hash=str(facts.get("hash")),
        result_checked=result is not None,
        profile=profile,
    )


def check_result(
    job: str, facts: Mapping[str, Any], *, result: Mapping[str, Any], form: Canonical | None = None
) -> None:
    """``result`` (columns and rows as served) against the ``result`` member of a verified receipt
    (``form``: the canonical form of the receipt's format; RFC 8785 unless given)."""
    form = form or form_of(RECEIPT_TYPE_V2)
    if "job_id" in result and result["job_id"] != job:
        raise IntegrityError(f"the result is for job {result['job_id']}, the receipt for job {job}")
    columns, rows = result.get("columns"), result.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise IntegrityError("the result is malformed: it needs `columns` and `rows` lists")
    if columns != facts["columns"]:
        raise IntegrityError(
            f"result of job {job}: columns {columns} differ from the signed columns {facts['columns']}"
        )
    if len(rows) != facts["row_count"]:
        raise IntegrityError(
            f"result of job {job}: {len(rows)} rows, the receipt signed {facts['row_count']}; rows were "
            "added or removed"
        )
    for index, (row, digest) in enumerate(zip(rows, facts["row_digests"], strict=True)):
        if not isinstance(row, list) or row_digest(row, form=form) != digest:
            raise IntegrityError(
                f"result of job {job}: row {index} differs from the row the receipt signed; the result "
                "was edited"
            )
    if content_sha256(columns, rows, form=form) != facts["content_sha256"]:
        raise IntegrityError(f"result of job {job}: content hash differs from the receipt's")
    if "output_sha256" in facts:
        output = result.get("output")
        if not isinstance(output, Mapping) or output_sha256(output, form=form) != facts["output_sha256"]:
            raise IntegrityError(f"result of job {job}: the `output` object differs from the signed one")
    if "result_hash" in result and result["result_hash"] != facts["hash"]:
        raise IntegrityError(
            f"result of job {job}: result_hash {result['result_hash']} differs from the signed "
            f"canonical hash {facts['hash']}"
        )
