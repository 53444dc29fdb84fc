"""The tamper-evident audit log: a SHA-256 hash chain with signed checkpoints.

Each :class:`AuditEntry` holds the hash of the one before it (the first holds :data:`GENESIS`) and its
own hash, the SHA-256 of the canonical JSON of every other field.

Two formats, one per entry, so a chain begun under the first goes on under the second without
re-hashing anything (docs/auditing.md, "Formats"):

* ``data-sandbox/audit-event/v2`` (written now): the hashed body carries ``"format"`` itself and is
  serialised by RFC 8785 (JCS, :func:`crypto.hashing.jcs_json`), so an auditor can recompute every hash
  in any language with a JCS library. Checkpoints ``data-sandbox/audit-checkpoint/v2`` sign JCS bytes.
* ``data-sandbox/audit-event/gm/v1`` (written under the ``gm`` profile, :mod:`crypto.profile`): the v2
  body (with its ``format`` member) hashed with SM3 (GB/T 32905) instead of SHA-256. Its checkpoints,
  ``data-sandbox/audit-checkpoint/gm/v1``, sign JCS bytes with SM2 (GB/T 32918.2).
* ``data-sandbox/audit-event/v1`` (written before): no ``format`` member; the body is serialised by
  :func:`crypto.hashing.canonical_json`. Checkpoints ``.../audit-checkpoint/v1`` likewise. Still verified.

The format is inside what is hashed (v2) or told by the absence of the member (v1), so relabelling an
entry changes its hash: a v1 entry cannot pass as v2 or the reverse. :func:`verify_chain` recomputes all
of it and says which event is wrong and how: edited, deleted, inserted, reordered, or the chain cut
short. A chain alone cannot reveal that its tail was cut off or rewritten with fresh hashes; that needs
a head kept elsewhere (``expected_head``) or signed :class:`Checkpoint`\\ s of earlier heads
(docs/design.md §9).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from crypto.errors import CryptoError, IntegrityError, UnknownKey
from crypto.hashing import canonical_json, exact_integers, jcs_json, sha256_hex
from crypto.signing import ED25519, SM2, Signer, verify
from crypto.sm import sm3_hex

GENESIS = "0" * 64
EVENT_FORMAT_V1 = "data-sandbox/audit-event/v1"
EVENT_FORMAT_V2 = "data-sandbox/audit-event/v2"
#: The format new events are written in.
EVENT_FORMAT = EVENT_FORMAT_V2
CHECKPOINT_TYPE_V1 = "data-sandbox/audit-checkpoint/v1"
CHECKPOINT_TYPE_V2 = "data-sandbox/audit-checkpoint/v2"
#: The format new checkpoints are signed in.
CHECKPOINT_TYPE = CHECKPOINT_TYPE_V2
EVENT_FORMAT_GM = "data-sandbox/audit-event/gm/v1"
CHECKPOINT_TYPE_GM = "data-sandbox/audit-checkpoint/gm/v1"
#: The event format and checkpoint type each profile writes (``crypto.profile``).
EVENT_FORMAT_BY_PROFILE: Mapping[str, str] = {"international": EVENT_FORMAT, "gm": EVENT_FORMAT_GM}
CHECKPOINT_TYPE_BY_PROFILE: Mapping[str, str] = {"international": CHECKPOINT_TYPE, "gm": CHECKPOINT_TYPE_GM}
Canonical = Callable[[object], bytes]
_EVENT_FORMS: Mapping[str, Canonical] = {
    EVENT_FORMAT_V1: canonical_json,
    EVENT_FORMAT_V2: jcs_json,
    EVENT_FORMAT_GM: jcs_json,
}
#: The hash each event format chains with.
_EVENT_HASHES: Mapping[str, Callable[[bytes], str]] = {EVENT_FORMAT_GM: sm3_hex}
_CHECKPOINT_FORMS: Mapping[str, Canonical] = {
    CHECKPOINT_TYPE_V1: canonical_json,
    CHECKPOINT_TYPE_V2: jcs_json,
    CHECKPOINT_TYPE_GM: jcs_json,
}
#: The signature algorithm each checkpoint type is signed with.
_CHECKPOINT_SIGNATURES: Mapping[str, str] = {CHECKPOINT_TYPE_GM: SM2}


def _form(forms: Mapping[str, Canonical], name: str, what: str) -> Canonical:
    form = forms.get(name)
    if form is None:
        raise IntegrityError(
            f"{what} has format {name!r}, which this verifier does not know ({', '.join(forms)})"
        )
    return form


@dataclass(frozen=True)
class AuditEntry:
    """One event of the chain. ``details`` must be JSON data; treat it as read-only. ``format`` says how
    it is hashed (module docstring); v1 is the default only so that events stored before v2 read back."""

    seq: int
    at: str
    event: str
    actor: str
    details: Mapping[str, object]
    prev_hash: str
    hash: str = ""
    format: str = EVENT_FORMAT_V1

    def _body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "seq": self.seq,
            "at": self.at,
            "event": self.event,
            "actor": self.actor,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
        }
        if self.format != EVENT_FORMAT_V1:  # v1 bodies had no format member; their hashes stay
            body["format"] = self.format
        return body

    def _form(self) -> Canonical:
        return _form(_EVENT_FORMS, self.format, f"audit event seq {self.seq}")

    def digest(self) -> str:
        """SHA-256 (SM3 for the gm format) of the canonical JSON (in this entry's format) of every field
        but ``hash``.

        >>> v2 = AuditEntry(seq=0, at="t", event="e", actor="a", details={"x": 1.0}, prev_hash=GENESIS,
        ...                 format=EVENT_FORMAT_V2)
        >>> v2.digest() == sha256_hex(jcs_json(v2._body()))
        True
        >>> v2.digest() == replace(v2, details={"x": 1}).digest()  # RFC 8785: 1.0 is 1
        True
        >>> gm = replace(v2, format=EVENT_FORMAT_GM)
        >>> gm.digest() == sm3_hex(jcs_json(gm._body()))
        True
        """
        body = self._form()(self._body())
        return _EVENT_HASHES.get(self.format, sha256_hex)(body)

    def to_json(self) -> str:
        """One canonical JSON line (the export format), in this entry's format; :meth:`from_json` reads it."""
        return self._form()({**self._body(), "hash": self.hash}).decode("utf-8")

    @classmethod
    def from_json(cls, line: str) -> AuditEntry:
        """Parse one exported line; :class:`IntegrityError` if it is not a well-formed event."""
        try:
            data = json.loads(line)
            entry = cls(
                seq=data["seq"],
                at=data["at"],
                event=data["event"],
                actor=data["actor"],
                details=data["details"],
                prev_hash=data["prev_hash"],
                hash=data["hash"],
                format=data.get("format", EVENT_FORMAT_V1),
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"audit line is not a well-formed event ({type(exc).__name__})") from exc
        texts = (entry.at, entry.event, entry.actor, entry.prev_hash, entry.hash, entry.format)
        types_ok = (
            isinstance(entry.seq, int)
            and not isinstance(entry.seq, bool)
            and all(isinstance(v, str) for v in texts)
            and isinstance(entry.details, dict)
        )
        if not types_ok:
            raise IntegrityError(f"audit line for seq {data.get('seq')!r} has a field of the wrong type")
        entry._form()  # an unknown format is refused here, not at the first digest
        return entry


@dataclass(frozen=True)
class ChainReport:
    """What a verified chain contains: ``head_hash`` is GENESIS and ``last_seq`` -1 for an empty one."""

    count: int
    head_hash: str
    last_seq: int


class ChainLink(Protocol):
    """What the next entry needs of the one before it: its position and its hash."""

    @property
    def seq(self) -> int: ...

    @property
    def hash(self) -> str: ...


def chain(
    prev: ChainLink | None,
    *,
    at: str,
    event: str,
    actor: str,
    details: Mapping[str, object],
    format: str = EVENT_FORMAT,
) -> AuditEntry:
    """The entry that follows ``prev`` (an entry, or a stored head with its ``seq`` and ``hash``; None
    starts the chain), with its hash filled in. ``format``: :data:`EVENT_FORMAT` unless a test needs the
    old one.

    >>> first = chain(None, at="2026-01-01T00:00:00Z", event="scope.approved", actor="bob", details={})
    >>> second = chain(first, at="2026-01-01T00:01:00Z", event="job.released", actor="alice",
    ...                details={"job": "j1"})
    >>> second.seq, second.prev_hash == first.hash, verify_chain([first, second]).count
    (1, True, 2)
    """
    # A JSON round trip both rejects non-JSON details early and detaches them from the caller's dict.
    # RFC 8785 has no form for an integer beyond I-JSON's exact range: v2 records it as its decimal
    # string, so no event can fail to be written for the size of a number in it.
    plain = exact_integers(dict(details)) if format != EVENT_FORMAT_V1 else dict(details)
    frozen_details = json.loads(canonical_json(plain))
    draft = AuditEntry(
        seq=0 if prev is None else prev.seq + 1,
        at=at,
        event=event,
        actor=actor,
        details=frozen_details,
        prev_hash=GENESIS if prev is None else prev.hash,
        format=format,
    )
    return replace(draft, hash=draft.digest())


def _sequence_problem(entries: list[AuditEntry], index: int, expected_seq: int) -> str:
    """Explain why ``entries[index]`` does not carry ``expected_seq``."""
    found = entries[index].seq
    seqs = Counter(e.seq for e in entries)
    later = {e.seq for e in entries[index + 1 :]}
    if seqs[found] > 1:
        return f"seq {found}: appears {seqs[found]} times; an event was inserted"
    if found < expected_seq:
        return f"seq {found}: found after seq {expected_seq - 1}; events were reordered"
    if expected_seq in later:
        return f"seq {expected_seq}: found after seq {found}; events were reordered"
    missing = f"seq {expected_seq}" if found == expected_seq + 1 else f"seqs {expected_seq}..{found - 1}"
    return f"{missing}: missing (seq {found} follows seq {expected_seq - 1}); events were deleted"


def verify_chain(
    entries: Iterable[AuditEntry],
    *,
    expected_head: str | None = None,
    checkpoints: Iterable[Checkpoint] = (),
) -> ChainReport:
    """Verify a whole chain from genesis; :class:`IntegrityError` names the first seq that is wrong.

    ``expected_head`` is a head hash kept outside the service: the chain must contain it, otherwise
    its tail was cut off or rewritten. ``checkpoints`` (verify their signatures first with
    :func:`verify_checkpoint`) must each match the chain at their seq, which detects a rewritten or
    truncated tail even when every hash was recomputed.

    >>> a = chain(None, at="t0", event="e", actor="x", details={})
    >>> b = chain(a, at="t1", event="e", actor="x", details={})
    >>> verify_chain([b, a])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: seq 1: found at position 0, but a chain starts at seq 0; events were ...
    >>> verify_chain([a], expected_head=b.hash)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: chain truncated or rewritten: the expected head ... is not in it ...
    """
    items = list(entries)
    prev: AuditEntry | None = None
    for index, entry in enumerate(items):
        expected_seq = 0 if prev is None else prev.seq + 1
        if entry.hash != entry.digest():
            raise IntegrityError(f"seq {entry.seq}: event edited (its content does not match its hash)")
        if entry.seq != expected_seq:
            if prev is None:
                later = {e.seq for e in items}
                deleted = "seq 0 was" if entry.seq == 1 else f"seqs 0..{entry.seq - 1} were"
                kind = "events were reordered" if 0 in later else f"{deleted} deleted"
                raise IntegrityError(
                    f"seq {entry.seq}: found at position 0, but a chain starts at seq 0; {kind}"
                )
            raise IntegrityError(_sequence_problem(items, index, expected_seq))
        expected_prev = GENESIS if prev is None else prev.hash
        if entry.prev_hash != expected_prev:
            raise IntegrityError(
                f"seq {entry.seq}: link broken (prev_hash does not match the hash of seq "
                f"{expected_seq - 1}); seq {expected_seq - 1} was edited and re-hashed, or an event was "
                "inserted or replaced"
            )
        prev = entry
    report = ChainReport(
        count=len(items),
        head_hash=GENESIS if prev is None else prev.hash,
        last_seq=-1 if prev is None else prev.seq,
    )
    by_hash = {e.hash for e in items}
    if expected_head is not None and expected_head != GENESIS and expected_head not in by_hash:
        raise IntegrityError(
            f"chain truncated or rewritten: the expected head {expected_head} is not in it "
            f"(chain ends at seq {report.last_seq} with head {report.head_hash})"
        )
    by_seq = {e.seq: e.hash for e in items}
    for cp in checkpoints:
        if cp.seq not in by_seq:
            raise IntegrityError(
                f"chain truncated: checkpoint at seq {cp.seq} but the chain ends at seq {report.last_seq}"
            )
        if by_seq[cp.seq] != cp.head_hash:
            raise IntegrityError(
                f"seq {cp.seq}: chain differs from the signed checkpoint at this seq; events up to seq "
                f"{cp.seq} were rewritten"
            )
    return report


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain's head at ``seq`` was ``head_hash`` (Ed25519, RFC 8032; SM2
    for the gm type). ``type`` says how the signed bytes are serialised and signed (module docstring)."""

    seq: int
    head_hash: str
    at: str
    kid: str
    signature: bytes = field(repr=False)
    type: str = CHECKPOINT_TYPE_V1

    def _form(self) -> Canonical:
        return _form(_CHECKPOINT_FORMS, self.type, f"checkpoint at seq {self.seq}")

    def message(self) -> bytes:
        """The exact bytes that are signed: canonical JSON (in the checkpoint's format) of type, seq,
        head_hash, at and kid."""
        return self._form()(
            {
                "type": self.type,
                "seq": self.seq,
                "head_hash": self.head_hash,
                "at": self.at,
                "kid": self.kid,
            }
        )

    def to_dict(self) -> dict[str, object]:
        """The JSON object of :meth:`to_json` (``type`` only from v2 on: v1 lines had none)."""
        data: dict[str, object] = {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": self.at,
            "kid": self.kid,
            "signature": self.signature.hex(),
        }
        if self.type != CHECKPOINT_TYPE_V1:
            data["type"] = self.type
        return data

    def to_json(self) -> str:
        """One canonical JSON line (in the checkpoint's format); the signature in hex."""
        return self._form()(self.to_dict()).decode("utf-8")

    @classmethod
    def from_json(cls, line: str) -> Checkpoint:
        """Parse :meth:`to_json` output; :class:`IntegrityError` if malformed."""
        try:
            data = json.loads(line)
            cp = cls(
                seq=int(data["seq"]),
                head_hash=str(data["head_hash"]),
                at=str(data["at"]),
                kid=str(data["kid"]),
                signature=bytes.fromhex(str(data["signature"])),
                type=str(data.get("type", CHECKPOINT_TYPE_V1)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"checkpoint line is malformed ({type(exc).__name__})") from exc
        cp._form()  # an unknown format is refused here
        return cp


def sign_checkpoint(
    pair: Signer, *, seq: int, head_hash: str, at: str, type: str = CHECKPOINT_TYPE
) -> Checkpoint:
    """Sign the head ``head_hash`` of the chain at ``seq`` (``type``: :data:`CHECKPOINT_TYPE` unless a
    test needs the old format, or :data:`CHECKPOINT_TYPE_GM` under the gm profile). The signer's
    algorithm must be the one the type names.

    >>> from crypto.signing import generate_signing_key
    >>> pair = generate_signing_key()
    >>> cp = sign_checkpoint(pair, seq=41, head_hash="ab" * 32, at="2026-01-01T00:00:00Z")
    >>> verify_checkpoint(cp, {pair.kid: pair.public})
    >>> verify_checkpoint(replace(cp, seq=40), {pair.kid: pair.public})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crypto.errors.IntegrityError: checkpoint at seq 40: signature does not verify ...
    """
    unsigned = Checkpoint(seq=seq, head_hash=head_hash, at=at, kid=pair.kid, signature=b"", type=type)
    expected = _CHECKPOINT_SIGNATURES.get(type, ED25519)
    if pair.algorithm != expected:
        raise IntegrityError(f"a {type} checkpoint is signed with {expected}, not {pair.algorithm}")
    return replace(unsigned, signature=pair.sign(unsigned.message()))


def verify_checkpoint(cp: Checkpoint, public_keys: Mapping[str, bytes]) -> None:
    """Check a checkpoint's signature; :class:`UnknownKey` if ``cp.kid`` is not among ``public_keys``."""
    public = public_keys.get(cp.kid)
    if public is None:
        raise UnknownKey(f"checkpoint at seq {cp.seq} is signed by unknown key {cp.kid}")
    algorithm = _CHECKPOINT_SIGNATURES.get(cp.type, ED25519)
    try:
        verify(public, cp.message(), cp.signature, algorithm=algorithm)
    except CryptoError as exc:  # a bad signature, or a key of the other algorithm (a relabelled type)
        raise IntegrityError(
            f"checkpoint at seq {cp.seq}: signature does not verify under key {cp.kid} (forged or edited)"
        ) from exc
