"""Witness co-signatures (crypto.witness): what they sign, what breaks them, and the continuity check
a witness makes before it signs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crypto.audit import AuditEntry, chain
from crypto.errors import IntegrityError
from crypto.hashing import jcs_json
from crypto.signing import SM2, generate_signing_key
from crypto.witness import (
    WITNESS_TYPE,
    WITNESS_TYPE_GM,
    WitnessSignature,
    check_extends,
    missing_witnesses,
    sign_witness,
    verify_witness,
)


def _chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            chain(entries[-1] if entries else None, at=f"t{i}", event="e", actor="a", details={"i": i})
        )
    return entries


def test_a_cosignature_signs_the_witness_seq_and_head_in_rfc8785_bytes() -> None:
    pair = generate_signing_key()
    ws = sign_witness(pair, witness="w", seq=4, head_hash="ab" * 32)
    assert ws.type == WITNESS_TYPE
    assert ws.message() == jcs_json(
        {"type": WITNESS_TYPE, "witness": "w", "seq": 4, "head_hash": "ab" * 32, "kid": pair.kid}
    )
    assert WitnessSignature.from_json(ws.to_json()) == ws
    verify_witness(ws, pair.public)


def test_an_sm2_witness_signs_the_gm_type_and_verifies() -> None:
    pair = generate_signing_key(SM2)
    ws = sign_witness(pair, witness="w", seq=1, head_hash="cd" * 32)
    assert ws.type == WITNESS_TYPE_GM
    verify_witness(ws, pair.public)
    with pytest.raises(IntegrityError):
        verify_witness(replace(ws, type=WITNESS_TYPE), pair.public)


@pytest.mark.parametrize(
    "edit",
    [
        {"seq": 5},
        {"head_hash": "00" * 32},
        {"witness": "someone-else"},
    ],
)
def test_an_edited_cosignature_does_not_verify(edit: dict[str, object]) -> None:
    pair = generate_signing_key()
    ws = sign_witness(pair, witness="w", seq=4, head_hash="ab" * 32)
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_witness(replace(ws, **edit), pair.public)  # type: ignore[arg-type]


def test_a_cosignature_under_another_key_does_not_verify() -> None:
    ws = sign_witness(generate_signing_key(), witness="w", seq=4, head_hash="ab" * 32)
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_witness(ws, generate_signing_key().public)


def test_malformed_cosignatures_are_refused() -> None:
    with pytest.raises(IntegrityError):
        WitnessSignature.from_json("[]")
    with pytest.raises(IntegrityError):
        WitnessSignature.from_dict({"witness": "w", "seq": "4", "head_hash": "", "kid": "", "signature": ""})
    good = sign_witness(generate_signing_key(), witness="w", seq=4, head_hash="ab" * 32).to_dict()
    with pytest.raises(IntegrityError, match="unknown type"):
        WitnessSignature.from_dict({**good, "type": "data-sandbox/audit-witness/v9"})


def test_a_witness_signs_a_head_that_extends_the_one_it_signed_before() -> None:
    entries = _chain(10)
    check_extends(entries, previous=None, seq=4, head_hash=entries[4].hash)
    check_extends(entries, previous=(4, entries[4].hash), seq=9, head_hash=entries[9].hash)


def test_a_witness_refuses_a_rewritten_history_even_with_every_hash_recomputed() -> None:
    entries = _chain(10)
    previous = (4, entries[4].hash)
    rewritten = entries[:2]
    rewritten.append(chain(rewritten[-1], at="t2", event="e", actor="mallory", details={"i": 2}))
    for old in entries[3:]:
        rewritten.append(
            chain(rewritten[-1], at=old.at, event=old.event, actor=old.actor, details=old.details)
        )
    with pytest.raises(IntegrityError, match="co-signed before"):
        check_extends(rewritten, previous=previous, seq=9, head_hash=rewritten[9].hash)


def test_a_witness_refuses_a_head_not_in_its_copy_going_backwards_or_a_broken_chain() -> None:
    entries = _chain(10)
    with pytest.raises(IntegrityError, match="does not hold"):
        check_extends(entries, previous=None, seq=9, head_hash="ab" * 32)
    with pytest.raises(IntegrityError, match="does not come after"):
        check_extends(entries, previous=(9, entries[9].hash), seq=4, head_hash=entries[4].hash)
    with pytest.raises(IntegrityError):
        check_extends(entries[:3] + entries[4:], previous=None, seq=9, head_hash=entries[9].hash)


def test_required_witnesses_by_name_by_domain_and_every_domain() -> None:
    domains = {"w-a": "a", "w-b": "b", "outside": None}
    assert missing_witnesses(["domain:*", "outside"], ["w-a", "w-b", "outside"], domains) == []
    assert missing_witnesses(["domain:*"], ["outside"], domains) == ["w-a", "w-b"]
    assert missing_witnesses(["domain:a", "domain:c"], ["w-a"], domains) == ["domain:c"]
    assert missing_witnesses(["outside"], [], domains) == ["outside"]
    assert missing_witnesses([], [], domains) == []
