"""Witness co-signatures of audit checkpoints: no single administrator can rewrite history unnoticed.

The gateway signs checkpoints of its hash chain (:mod:`crypto.audit`), but whoever holds the gateway's
signing key can rewrite an event, recompute every later hash and sign fresh checkpoints. A *witness*
holds its own key pair, outside the gateway (each domain's witness, and optionally an outside auditor).
Before it co-signs a checkpoint it checks, on its own copy of the chain, that the new head extends the
head it co-signed last time (:func:`check_extends`). A rewritten chain then cannot carry the old
co-signatures: they sign the old head hashes, which the rewritten chain no longer contains, and the
witness refuses to co-sign the new ones.

A co-signature ``data-sandbox/audit-witness/v1`` signs the RFC 8785 bytes of ``{type, witness, seq,
head_hash, kid}`` with Ed25519; ``data-sandbox/audit-witness/gm/v1`` signs the same with SM2. The
witness chooses its own algorithm: the type follows its key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from crypto.audit import AuditEntry, verify_chain
from crypto.errors import CryptoError, IntegrityError
from crypto.hashing import jcs_json
from crypto.signing import ED25519, SM2, Signer, key_id, verify

WITNESS_TYPE = "data-sandbox/audit-witness/v1"
WITNESS_TYPE_GM = "data-sandbox/audit-witness/gm/v1"
_ALGORITHM_OF_TYPE: Mapping[str, str] = {WITNESS_TYPE: ED25519, WITNESS_TYPE_GM: SM2}
_TYPE_OF_ALGORITHM: Mapping[str, str] = {ED25519: WITNESS_TYPE, SM2: WITNESS_TYPE_GM}
#: A required-witness pattern that every registered domain witness must satisfy.
EVERY_DOMAIN = "domain:*"


@dataclass(frozen=True)
class WitnessSignature:
    """Witness ``witness`` (key ``kid``) states that the chain's head at ``seq`` was ``head_hash``."""

    witness: str
    seq: int
    head_hash: str
    kid: str
    signature: bytes = field(repr=False)
    type: str = WITNESS_TYPE

    def message(self) -> bytes:
        """The exact bytes that are signed (RFC 8785 JSON of everything but the signature)."""
        if self.type not in _ALGORITHM_OF_TYPE:
            raise IntegrityError(f"co-signature of seq {self.seq} has unknown type {self.type!r}")
        return jcs_json(
            {
                "type": self.type,
                "witness": self.witness,
                "seq": self.seq,
                "head_hash": self.head_hash,
                "kid": self.kid,
            }
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "witness": self.witness,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "kid": self.kid,
            "signature": self.signature.hex(),
        }

    def to_json(self) -> str:
        return jcs_json(self.to_dict()).decode("utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> WitnessSignature:
        """Parse :meth:`to_dict` output; :class:`IntegrityError` if malformed."""
        try:
            seq = data["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise TypeError("seq")
            ws = cls(
                witness=str(data["witness"]),
                seq=seq,
                head_hash=str(data["head_hash"]),
                kid=str(data["kid"]),
                signature=bytes.fromhex(str(data["signature"])),
                type=str(data.get("type", WITNESS_TYPE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"witness co-signature is malformed ({type(exc).__name__})") from exc
        ws.message()  # an unknown type is refused here
        return ws

    @classmethod
    def from_json(cls, line: str) -> WitnessSignature:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IntegrityError("witness co-signature is not JSON") from exc
        if not isinstance(data, dict):
            raise IntegrityError("witness co-signature is not a JSON object")
        return cls.from_dict(data)


def sign_witness(signer: Signer, *, witness: str, seq: int, head_hash: str) -> WitnessSignature:
    """Co-sign the head ``head_hash`` at ``seq`` as ``witness`` (call :func:`check_extends` first).

    >>> from crypto.signing import generate_signing_key
    >>> pair = generate_signing_key()
    >>> ws = sign_witness(pair, witness="outside-auditor", seq=9, head_hash="ab" * 32)
    >>> verify_witness(ws, pair.public)
    >>> verify_witness(replace(ws, head_hash="cd" * 32), pair.public)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: co-signature of seq 9 by witness outside-auditor does not verify ...
    """
    kind = _TYPE_OF_ALGORITHM.get(signer.algorithm)
    if kind is None:
        raise IntegrityError(f"a witness key cannot be a {signer.algorithm} key")
    unsigned = WitnessSignature(
        witness=witness, seq=seq, head_hash=head_hash, kid=signer.kid, signature=b"", type=kind
    )
    return replace(unsigned, signature=signer.sign(unsigned.message()))


def verify_witness(ws: WitnessSignature, public: bytes) -> None:
    """Check a co-signature against the witness's public key; :class:`IntegrityError` if it fails."""
    algorithm = _ALGORITHM_OF_TYPE.get(ws.type)
    bad = IntegrityError(
        f"co-signature of seq {ws.seq} by witness {ws.witness} does not verify under its key "
        "(forged, edited, or signed by another key)"
    )
    if algorithm is None or key_id(public) != ws.kid:
        raise bad
    try:
        verify(public, ws.message(), ws.signature, algorithm=algorithm)
    except CryptoError as exc:
        raise bad from exc


def check_extends(
    entries: Iterable[AuditEntry],
    *,
    previous: tuple[int, str] | None,
    seq: int,
    head_hash: str,
    chain_verified: bool = False,
) -> None:
    """What a witness checks before it co-signs ``(seq, head_hash)``: its copy of the chain verifies
    from genesis, holds ``head_hash`` at ``seq``, and still holds the head ``previous = (seq, hash)`` it
    co-signed last time (None: its first co-signature). :class:`IntegrityError` says why to refuse.
    ``chain_verified``: the caller has just run :func:`crypto.audit.verify_chain` on these entries
    (one pass for many checkpoints).
    """
    items = list(entries)
    if not chain_verified:
        verify_chain(items)
    by_seq = {e.seq: e.hash for e in items}
    if by_seq.get(seq) != head_hash:
        raise IntegrityError(
            f"refused: the checkpoint at seq {seq} names head {head_hash}, which the chain does not "
            "hold at that seq"
        )
    if previous is None:
        return
    last_seq, last_hash = previous
    if seq <= last_seq:
        raise IntegrityError(
            f"refused: seq {seq} does not come after seq {last_seq}, the head this witness co-signed last"
        )
    if by_seq.get(last_seq) != last_hash:
        raise IntegrityError(
            f"refused: the chain no longer holds head {last_hash} at seq {last_seq}, which this witness "
            "co-signed before; history up to that seq was rewritten or cut"
        )


def missing_witnesses(
    required: Sequence[str], signed_by: Iterable[str], domains: Mapping[str, str | None]
) -> list[str]:
    """The required witnesses that did not co-sign. ``required`` holds witness names, ``domain:NAME``
    (some witness of that domain) and :data:`EVERY_DOMAIN` (every witness registered for a domain);
    ``domains`` maps each known witness to its domain (None: an outside witness).

    >>> missing_witnesses(["domain:*", "outside"], ["w-a"], {"w-a": "a", "w-b": "b", "outside": None})
    ['w-b', 'outside']
    >>> missing_witnesses(["domain:b"], ["w-a"], {"w-a": "a", "w-b": "b"})
    ['domain:b']
    """
    signed = set(signed_by)
    missing: list[str] = []
    for want in required:
        if want == EVERY_DOMAIN:
            missing += [
                w for w, d in domains.items() if d is not None and w not in signed and w not in missing
            ]
        elif want.startswith("domain:"):
            domain = want.removeprefix("domain:")
            if not any(domains.get(w) == domain for w in signed):
                missing.append(want)
        elif want not in signed and want not in missing:
            missing.append(want)
    return missing
