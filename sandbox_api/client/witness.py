"""The witness's side (``sandbox witness``): its key file, its memory of the head it co-signed last,
and the check before each co-signature. Offline logic only; the CLI fetches and posts.

The state file is the witness's own record of the last head it co-signed. It is what catches a
rewrite: the witness co-signs a new checkpoint only if its fresh copy of the chain still holds that
head (``crypto.witness.check_extends``), so keep the state file where the gateway's administrators
cannot edit it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crypto.audit import AuditEntry, Checkpoint, verify_chain
from crypto.errors import CryptoError
from crypto.signing import ED25519, SigningKeyPair, generate_signing_key
from crypto.witness import WitnessSignature, check_extends, sign_witness

KEY_FORMAT = "data-sandbox/witness-key/v1"


@dataclass(frozen=True)
class WitnessKeyFile:
    name: str
    pair: SigningKeyPair


def new_key(path: Path, *, name: str, algorithm: str = ED25519) -> WitnessKeyFile:
    """Write a fresh witness key to ``path`` (owner-only permissions); refuses to overwrite one."""
    pair = generate_signing_key(algorithm)
    document = {"format": KEY_FORMAT, "witness": name, "algorithm": algorithm, "private": pair.private.hex()}
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as out:
        json.dump(document, out)
    return WitnessKeyFile(name=name, pair=pair)


def read_key(path: Path) -> WitnessKeyFile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != KEY_FORMAT:
            raise ValueError("format")
        pair = SigningKeyPair.from_private(bytes.fromhex(data["private"]), algorithm=data["algorithm"])
        return WitnessKeyFile(name=str(data["witness"]), pair=pair)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CryptoError(f"{path.name} is not a witness key file ({type(exc).__name__})") from exc


def read_state(path: Path) -> tuple[int, str] | None:
    """The head this witness co-signed last, or None before its first co-signature."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["seq"]), str(data["head_hash"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CryptoError(f"witness state {path.name} is unreadable ({type(exc).__name__})") from exc


def write_state(path: Path, head: tuple[int, str]) -> None:
    """Replace the state atomically, so a crash never leaves a half-written head."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"seq": head[0], "head_hash": head[1]}), encoding="utf-8")
    temporary.replace(path)


def cosign(
    key: WitnessKeyFile,
    entries: Sequence[AuditEntry],
    checkpoints: Sequence[Checkpoint],
    previous: tuple[int, str] | None,
) -> list[WitnessSignature]:
    """Co-sign ``checkpoints`` in order, each only once ``entries`` (a fresh export) show that it
    extends the head signed before it; :class:`crypto.errors.IntegrityError` stops at the first that
    does not (nothing after it is signed)."""
    verify_chain(entries)  # once; each checkpoint below then only looks up its heads
    signed: list[WitnessSignature] = []
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        check_extends(entries, previous=previous, seq=cp.seq, head_hash=cp.head_hash, chain_verified=True)
        signed.append(sign_witness(key.pair, witness=key.name, seq=cp.seq, head_hash=cp.head_hash))
        previous = (cp.seq, cp.head_hash)
    return signed
