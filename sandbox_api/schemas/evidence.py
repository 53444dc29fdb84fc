"""Evidence: receipts, audit bundles, replay, published signing keys, shredding."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox_api.schemas.base import _Out

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
