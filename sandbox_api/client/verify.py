"""Offline verification of receipts and audit bundles: no server, no database, no trust in the service.

Everything here reads JSON files an auditor holds and the public signing keys, and raises a
``crypto`` error whose detail names what is wrong and where:

- :class:`crypto.errors.IntegrityError`: an edited receipt, result or audit event, a deleted, inserted
  or reordered event, a truncated chain, a forged checkpoint;
- :class:`crypto.errors.UnknownKey`: a signature by a key that is not among the trusted keys;
- :class:`crypto.errors.KeyNotValid`: a signature dated outside its key's validity period (for example
  a receipt signed with a key after it was retired).

The trusted keys come from ``GET /v1/keys/signing`` (or ``sandbox keys export``), kept by the auditor.
An audit bundle carries the service's keys too; pass your own copy to make the check independent of
the bundle.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypto.audit import AuditEntry, Checkpoint, verify_chain, verify_checkpoint
from crypto.errors import CryptoError, IntegrityError, KeyNotValid, UnknownKey
from crypto.signing import ED25519, ED25519_KEY_BYTES, SM2, SigningKeyRecord, key_id
from crypto.sm import SM2_PUBLIC_BYTES
from crypto.witness import WitnessSignature, missing_witnesses, verify_witness
from sandbox_api.bundle_format import BUNDLE_FORMAT, BUNDLE_FORMATS, KEYS_FORMAT
from sandbox_api.receipt_check import ReceiptReport, TrustedKeys, check_result, moment, verify_receipt

# The receipt check lives beside the receipt format, where the gateway's replay uses it too; it is part
# of this verifier's interface.
__all__ = [
    "BUNDLE_FORMAT",
    "KEYS_FORMAT",
    "BundleReport",
    "ReceiptReport",
    "TrustedKeys",
    "WitnessKey",
    "check_result",
    "load_keys",
    "load_witnesses",
    "parse_keys",
    "parse_witnesses",
    "read_json",
    "verify_bundle",
    "verify_export_lines",
    "verify_receipt",
]
# A bare public key given on the command line has no published period: accept any signing time.
_OPEN_START = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BundleReport:
    count: int
    last_seq: int
    head_hash: str
    checkpoints: int
    keys: tuple[str, ...]
    # Witnessed checkpoints (docs/auditing.md): how many co-signatures verified, and each stored
    # checkpoint that lacks a required witness, with the witnesses it lacks.
    witness_signatures: int = 0
    unwitnessed: tuple[tuple[int, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public key, as ``GET /v1/witnesses`` publishes it and the auditor keeps it."""

    name: str
    domain: str | None
    public: bytes


def parse_witnesses(value: object) -> tuple[dict[str, WitnessKey], list[str] | None]:
    """Witness keys by name, and the required witnesses where the document names them: a list of
    witness records (``GET /v1/witnesses``, ``sandbox witness list``), or ``{"witnesses": [...],
    "required": [...]}``, or an audit bundle.

    >>> keys, required = parse_witnesses({"witnesses": [{"name": "w", "public_key": "00" * 32}]})
    >>> keys["w"].domain, required
    (None, None)
    """
    required: list[str] | None = None
    records = value
    if isinstance(value, Mapping):
        records = value.get("witnesses", [])
        wanted = value.get("required", value.get("witnesses_required"))
        if wanted is not None:
            if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
                raise CryptoError("`required` must be a list of witness names or domain patterns")
            required = list(wanted)
    if not isinstance(records, list):
        raise CryptoError("witness keys must be a list of {name, domain, public_key}")
    keys: dict[str, WitnessKey] = {}
    for item in records:
        try:
            name, public = str(item["name"]), bytes.fromhex(str(item["public_key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CryptoError("a witness record needs a name and a public_key in hex") from exc
        domain = item.get("domain")
        keys[name] = WitnessKey(name=name, domain=None if domain is None else str(domain), public=public)
    return keys, required


def load_witnesses(path: Path) -> tuple[dict[str, WitnessKey], list[str] | None]:
    return parse_witnesses(read_json(path, what="witness keys file"))


def _check_witnesses(
    bundle: Mapping[str, Any],
    stored: list[Checkpoint],
    entries: list[AuditEntry],
    witness_keys: Mapping[str, WitnessKey] | None,
    required: Sequence[str] | None,
) -> tuple[int, tuple[tuple[int, tuple[str, ...]], ...]]:
    """Verify every co-signature the bundle carries against the witnesses' keys (the auditor's own
    copy when given) and against the chain, then name the checkpoints that lack a required witness."""
    if witness_keys is None or required is None:
        from_bundle, bundle_required = parse_witnesses(
            {"witnesses": bundle.get("witnesses", []), "required": bundle.get("witnesses_required", [])}
        )
        witness_keys = from_bundle if witness_keys is None else witness_keys
        required = bundle_required if required is None else required
    signatures = [WitnessSignature.from_dict(s) for s in bundle.get("witness_signatures", [])]
    by_seq = {e.seq: e.hash for e in entries}
    signed: dict[int, set[str]] = {}
    for ws in signatures:
        key = witness_keys.get(ws.witness)
        if key is None:
            raise UnknownKey(f"co-signature of seq {ws.seq} by witness {ws.witness}, whose key is not given")
        verify_witness(ws, key.public)
        if by_seq.get(ws.seq) != ws.head_hash:
            raise IntegrityError(
                f"seq {ws.seq}: chain differs from the head witness {ws.witness} co-signed; events up to "
                f"seq {ws.seq} were rewritten"
            )
        signed.setdefault(ws.seq, set()).add(ws.witness)
    domains = {name: k.domain for name, k in witness_keys.items()}
    unwitnessed = []
    for cp in stored:
        lacking = missing_witnesses(required or (), signed.get(cp.seq, set()), domains)
        if lacking:
            unwitnessed.append((cp.seq, tuple(lacking)))
    return len(signatures), tuple(unwitnessed)


# --- keys ------------------------------------------------------------------------------------------


def _record(data: Mapping[str, Any]) -> SigningKeyRecord:
    """A published key record; ``public`` in base64 (``SigningKeyRecord.to_dict``) or hex (audit head)."""
    public = str(data.get("public", ""))
    hex_lengths = (2 * ED25519_KEY_BYTES, 2 * SM2_PUBLIC_BYTES)
    if len(public) in hex_lengths and all(c in "0123456789abcdefABCDEF" for c in public):
        data = {**data, "public": base64.b64encode(bytes.fromhex(public)).decode("ascii")}
    return SigningKeyRecord.from_dict(data)


def _bare_key(text: str) -> SigningKeyRecord:
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    # 32 bytes: Ed25519; 65 bytes from 04: an uncompressed SM2 point (the gm profile).
    algorithm = {ED25519_KEY_BYTES: ED25519, SM2_PUBLIC_BYTES: SM2}.get(len(raw or b""))
    if raw is None or algorithm is None or (algorithm == SM2 and raw[0] != 4):
        raise CryptoError(
            "a public key must be a keys file (sandbox keys export), a JSON key record, or 32 bytes "
            "(Ed25519) or 65 bytes (SM2) in hex or base64"
        )
    return SigningKeyRecord(
        kid=key_id(raw),
        public=raw,
        not_before=_OPEN_START,
        not_after=None,
        state="given",
        algorithm=algorithm,
    )


def parse_keys(value: object) -> dict[str, SigningKeyRecord]:
    """Trusted keys by id, from a keys document, a bundle, a list of records, one record, or a bare key.

    >>> parse_keys("00" * 32)  # doctest: +ELLIPSIS
    {'66687aadf862bd77': SigningKeyRecord(kid='66687aadf862bd77', ...)}
    """
    if isinstance(value, str):
        return {(r := _bare_key(value.strip())).kid: r}
    if isinstance(value, Mapping):
        if "keys" in value:
            return parse_keys(value["keys"])
        if "signing_keys" in value:
            return parse_keys(value["signing_keys"])
        return {(r := _record(value)).kid: r}
    if isinstance(value, Sequence):
        records = [_record(item) for item in value if isinstance(item, Mapping)]
        if len(records) != len(value):
            raise CryptoError("a list of keys must hold key records (objects with kid and public)")
        return {r.kid: r for r in records}
    raise CryptoError(f"cannot read signing keys from a {type(value).__name__}")


def load_keys(source: str | Path) -> dict[str, SigningKeyRecord]:
    """Keys from a JSON file, or from a literal hex/base64 public key."""
    path = Path(source)
    if path.is_file():
        return parse_keys(read_json(path, what="keys file"))
    return parse_keys(str(source))


def read_json(path: Path, *, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{what} {path.name} is not readable JSON ({type(exc).__name__})") from exc


# --- audit bundles ---------------------------------------------------------------------------------


def _checkpoint(data: Mapping[str, Any]) -> Checkpoint:
    return Checkpoint.from_json(json.dumps(dict(data)))


def _require_formats(bundle_format: str, entries: list[AuditEntry], checkpoints: list[Checkpoint]) -> None:
    """A v1 bundle was written before v2 events existed: one that holds them was not written so."""
    only = BUNDLE_FORMATS[bundle_format]
    if only is None:
        return
    event_format, checkpoint_type = only
    for entry in entries:
        if entry.format != event_format:
            raise IntegrityError(
                f"seq {entry.seq}: a {bundle_format} bundle cannot hold a {entry.format} event"
            )
    for cp in checkpoints:
        if cp.type != checkpoint_type:
            raise IntegrityError(
                f"checkpoint at seq {cp.seq}: a {bundle_format} bundle cannot hold a {cp.type}"
            )


def verify_bundle(
    bundle: Mapping[str, Any],
    *,
    expected_head: str | None = None,
    trusted_keys: TrustedKeys | None = None,
    witness_keys: Mapping[str, WitnessKey] | None = None,
    required_witnesses: Sequence[str] | None = None,
) -> BundleReport:
    """Verify every event, every checkpoint signature (and its key's validity), every witness
    co-signature, and the chain's tail.

    ``expected_head`` is a head hash kept outside the service: a bundle whose chain does not contain it
    was truncated or rewritten. ``trusted_keys`` replaces the keys the bundle carries; ``witness_keys``
    and ``required_witnesses`` the witnesses and the requirement it carries.
    """
    bundle_format = bundle.get("format")
    if bundle_format not in BUNDLE_FORMATS:
        known = " or ".join(sorted(BUNDLE_FORMATS))
        raise IntegrityError(f"not an audit bundle: format is {bundle_format!r}, not {known}")
    keys = dict(trusted_keys) if trusted_keys is not None else parse_keys(bundle.get("signing_keys", []))
    events = bundle.get("events")
    if not isinstance(events, list):
        raise IntegrityError("audit bundle is malformed: `events` is not a list")
    entries = [AuditEntry.from_json(json.dumps(e)) for e in events]
    checkpoints = [_checkpoint(c) for c in bundle.get("checkpoints", [])]
    stored = list(checkpoints)  # the head's checkpoint is signed at export time: no witness saw it
    head = bundle.get("head") or {}
    if isinstance(head, Mapping) and isinstance(head.get("checkpoint"), Mapping):
        checkpoints.append(_checkpoint(head["checkpoint"]))
    _require_formats(str(bundle_format), entries, checkpoints)
    publics = {kid: r.public for kid, r in keys.items()}
    for cp in checkpoints:
        verify_checkpoint(cp, publics)
        try:
            keys[cp.kid].require_valid_at(moment(cp.at, f"checkpoint at seq {cp.seq}: at"))
        except KeyNotValid as exc:
            raise KeyNotValid(f"checkpoint at seq {cp.seq}: {exc.detail}") from exc
    report = verify_chain(entries, expected_head=expected_head, checkpoints=checkpoints)
    cosigned, unwitnessed = _check_witnesses(bundle, stored, entries, witness_keys, required_witnesses)
    return BundleReport(
        count=report.count,
        last_seq=report.last_seq,
        head_hash=report.head_hash,
        checkpoints=len(checkpoints),
        keys=tuple(sorted(keys)),
        witness_signatures=cosigned,
        unwitnessed=unwitnessed,
    )


def verify_export_lines(lines: Sequence[str], *, expected_head: str | None = None) -> BundleReport:
    """A JSON Lines export (``GET /v1/audit/export``): the chain only, no checkpoints or keys."""
    entries = [AuditEntry.from_json(line) for line in lines if line.strip()]
    report = verify_chain(entries, expected_head=expected_head)
    return BundleReport(
        count=report.count, last_seq=report.last_seq, head_hash=report.head_hash, checkpoints=0, keys=()
    )
