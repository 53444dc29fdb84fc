"""Audit witnesses: registration, co-signatures and the checkpoints they co-sign."""

from __future__ import annotations

from pydantic import Field

from sandbox_api.schemas.audit import CheckpointOut
from sandbox_api.schemas.base import NAME_REGEX, _In, _Out
from sandbox_api.schemas.evidence import WitnessSignatureOut

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
