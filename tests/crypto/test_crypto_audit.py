"""The audit hash chain and signed checkpoints: every kind of tampering is found and named."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.audit import (
    GENESIS,
    AuditEntry,
    Checkpoint,
    chain,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from crypto.errors import IntegrityError, NotCanonical, UnknownKey
from crypto.signing import generate_signing_key, sign


def build(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            chain(
                entries[-1] if entries else None,
                at=f"2026-01-01T00:00:{i:02d}Z",
                event="job.released" if i % 2 else "scope.approved",
                actor=f"user-{i % 3}",
                details={"job": f"j{i}", "rows": i},
            )
        )
    return entries


def rehash_from(entries: list[AuditEntry], start: int) -> list[AuditEntry]:
    """What a careful attacker does: recompute every hash and link from ``start`` on."""
    out = entries[:start]
    for e in entries[start:]:
        prev = out[-1] if out else None
        draft = replace(e, seq=0 if prev is None else prev.seq + 1, prev_hash=prev.hash if prev else GENESIS)
        out.append(replace(draft, hash=draft.digest()))
    return out


def test_intact_chain_verifies_and_reports_its_head() -> None:
    entries = build(5)
    report = verify_chain(entries)
    assert (report.count, report.last_seq, report.head_hash) == (5, 4, entries[-1].hash)


def test_empty_chain_verifies_to_genesis() -> None:
    report = verify_chain([])
    assert (report.count, report.last_seq, report.head_hash) == (0, -1, GENESIS)


def test_entries_round_trip_through_json_lines() -> None:
    entries = build(4)
    parsed = [AuditEntry.from_json(e.to_json()) for e in entries]
    assert parsed == entries
    verify_chain(parsed)


def test_details_are_detached_from_the_callers_dict() -> None:
    details: dict[str, object] = {"job": "j1"}
    entry = chain(None, at="t", event="e", actor="a", details=details)
    details["job"] = "j2"
    verify_chain([entry])


def test_non_json_details_are_refused_when_chained() -> None:
    with pytest.raises(NotCanonical):
        chain(None, at="t", event="e", actor="a", details={"x": float("nan")})


EDITS: dict[str, Callable[[AuditEntry], AuditEntry]] = {
    "at": lambda e: replace(e, at="2020-01-01T00:00:00Z"),
    "event": lambda e: replace(e, event="scope.revoked"),
    "actor": lambda e: replace(e, actor="mallory"),
    "details": lambda e: replace(e, details={"job": "forged"}),
}


@pytest.mark.parametrize("field", ["at", "event", "actor", "details"])
def test_edited_event_is_named(field: str) -> None:
    entries = build(5)
    entries[2] = EDITS[field](entries[2])
    with pytest.raises(IntegrityError, match=r"^seq 2: event edited"):
        verify_chain(entries)


def test_edited_and_rehashed_event_breaks_the_next_link() -> None:
    entries = build(5)
    edited = replace(entries[2], actor="mallory")
    entries[2] = replace(edited, hash=edited.digest())
    with pytest.raises(IntegrityError, match=r"^seq 3: link broken .* seq 2 was edited"):
        verify_chain(entries)


def test_deleted_event_is_named() -> None:
    entries = build(5)
    del entries[2]
    with pytest.raises(IntegrityError, match=r"^seq 2: missing \(seq 3 follows seq 1\); events were deleted"):
        verify_chain(entries)


def test_several_deleted_events_are_named_as_a_range() -> None:
    entries = build(6)
    del entries[1:4]
    with pytest.raises(IntegrityError, match=r"^seqs 1\.\.3: missing"):
        verify_chain(entries)


def test_deleted_first_event_is_named() -> None:
    entries = build(4)[1:]
    with pytest.raises(IntegrityError, match=r"^seq 1: found at position 0.*seq 0 was deleted"):
        verify_chain(entries)


def test_inserted_event_is_named() -> None:
    entries = build(5)
    forged = chain(entries[1], at="t", event="job.released", actor="mallory", details={"job": "jX"})
    entries.insert(2, forged)
    with pytest.raises(IntegrityError, match=r"^seq 2: appears 2 times; an event was inserted"):
        verify_chain(entries)


def test_inserted_event_with_renumbered_tail_breaks_a_link() -> None:
    entries = build(5)
    forged = chain(entries[1], at="t", event="job.released", actor="mallory", details={})
    tail = [replace(e, seq=e.seq + 1) for e in entries[2:]]
    tail = [replace(e, hash=e.digest()) for e in tail]
    with pytest.raises(IntegrityError, match=r"^seq 3: link broken"):
        verify_chain([*entries[:2], forged, *tail])


def test_swapped_events_are_named_as_reordered() -> None:
    entries = build(5)
    entries[1], entries[2] = entries[2], entries[1]
    with pytest.raises(IntegrityError, match=r"^seq 1: found after seq 2; events were reordered"):
        verify_chain(entries)


def test_event_moved_back_is_named_as_reordered() -> None:
    entries = build(6)
    moved = entries.pop(1)
    entries.insert(4, moved)
    with pytest.raises(IntegrityError, match=r"events were reordered"):
        verify_chain(entries)


def test_reordered_start_is_named() -> None:
    entries = build(3)
    with pytest.raises(IntegrityError, match=r"^seq 1: found at position 0.*reordered"):
        verify_chain([entries[1], entries[0], entries[2]])


def test_truncated_tail_is_found_against_the_expected_head() -> None:
    entries = build(6)
    head = entries[-1].hash
    with pytest.raises(IntegrityError, match=r"chain truncated or rewritten.*ends at seq 3"):
        verify_chain(entries[:4], expected_head=head)


def test_truncation_to_nothing_is_found() -> None:
    with pytest.raises(IntegrityError, match="truncated"):
        verify_chain([], expected_head=build(1)[0].hash)


def test_an_older_expected_head_is_fine_once_the_chain_has_grown() -> None:
    entries = build(6)
    assert verify_chain(entries, expected_head=entries[3].hash).last_seq == 5


def test_rewritten_tail_is_found_against_the_expected_head() -> None:
    entries = build(6)
    head = entries[-1].hash
    rewritten = rehash_from([*entries[:3], *entries[4:]], 3)  # delete seq 3 and cover the tracks
    verify_chain(rewritten)  # internally consistent: only an outside copy can tell
    with pytest.raises(IntegrityError, match="truncated or rewritten"):
        verify_chain(rewritten, expected_head=head)


# -- checkpoints ------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_json() -> None:
    pair = generate_signing_key()
    entries = build(4)
    cp = sign_checkpoint(pair, seq=3, head_hash=entries[3].hash, at="2026-01-01T01:00:00Z")
    again = Checkpoint.from_json(cp.to_json())
    assert again == cp
    verify_checkpoint(again, {pair.kid: pair.public})
    verify_chain(entries, checkpoints=[again])


CHECKPOINT_EDITS: dict[str, Callable[[Checkpoint], Checkpoint]] = {
    "seq": lambda cp: replace(cp, seq=4),
    "head_hash": lambda cp: replace(cp, head_hash="f" * 64),
    "at": lambda cp: replace(cp, at="2027-01-01T00:00:00Z"),
    "signature": lambda cp: replace(cp, signature=bytes([cp.signature[0] ^ 1]) + cp.signature[1:]),
}


@pytest.mark.parametrize("field", sorted(CHECKPOINT_EDITS))
def test_edited_checkpoint_is_refused(field: str) -> None:
    pair = generate_signing_key()
    cp = sign_checkpoint(pair, seq=3, head_hash="a" * 64, at="2026-01-01T00:00:00Z")
    with pytest.raises(IntegrityError, match=r"checkpoint at seq \d: signature does not verify"):
        verify_checkpoint(CHECKPOINT_EDITS[field](cp), {pair.kid: pair.public})


def test_checkpoint_signed_by_another_key_claiming_a_known_kid_is_refused() -> None:
    trusted, mallory = generate_signing_key(), generate_signing_key()
    honest = sign_checkpoint(trusted, seq=3, head_hash="a" * 64, at="t")
    forged = replace(honest, signature=sign(mallory.private, honest.message()))
    with pytest.raises(IntegrityError, match="forged or edited"):
        verify_checkpoint(forged, {trusted.kid: trusted.public})


def test_checkpoint_from_an_unknown_key_is_refused() -> None:
    mallory = generate_signing_key()
    cp = sign_checkpoint(mallory, seq=1, head_hash="a" * 64, at="t")
    with pytest.raises(UnknownKey, match=f"unknown key {mallory.kid}"):
        verify_checkpoint(cp, {generate_signing_key().kid: generate_signing_key().public})


def test_relabelled_kid_is_refused() -> None:
    trusted, mallory = generate_signing_key(), generate_signing_key()
    cp = replace(sign_checkpoint(mallory, seq=1, head_hash="a" * 64, at="t"), kid=trusted.kid)
    with pytest.raises(IntegrityError):
        verify_checkpoint(cp, {trusted.kid: trusted.public, mallory.kid: mallory.public})


def test_checkpoint_finds_a_rewritten_tail() -> None:
    pair = generate_signing_key()
    entries = build(6)
    cp = sign_checkpoint(pair, seq=4, head_hash=entries[4].hash, at="t")
    rewritten = rehash_from([*entries[:2], *entries[3:]], 2)  # seq 2 deleted, the rest re-hashed
    with pytest.raises(IntegrityError, match=r"^seq 4: chain differs from the signed checkpoint"):
        verify_chain(rewritten, checkpoints=[cp])


def test_checkpoint_finds_truncation() -> None:
    pair = generate_signing_key()
    entries = build(6)
    cp = sign_checkpoint(pair, seq=5, head_hash=entries[5].hash, at="t")
    with pytest.raises(IntegrityError, match=r"chain truncated: checkpoint at seq 5 .* ends at seq 2"):
        verify_chain(entries[:3], checkpoints=[cp])


@pytest.mark.parametrize(
    "line",
    ["not json", "{}", json.dumps({"seq": 0}), json.dumps({"seq": "0", "at": 1})],
)
def test_malformed_audit_lines_are_integrity_errors(line: str) -> None:
    with pytest.raises(IntegrityError):
        AuditEntry.from_json(line)


def test_malformed_checkpoint_line_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        Checkpoint.from_json('{"seq": 1, "signature": "zz"}')


# -- properties -------------------------------------------------------------------------------------

MUTATIONS = ["edit", "edit_and_rehash", "delete", "insert", "swap", "duplicate"]


@settings(max_examples=120, deadline=None)
@given(n=st.integers(min_value=2, max_value=12), mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_property_every_mutation_of_a_chain_is_detected(n: int, mutation: str, data: st.DataObject) -> None:
    entries = build(n)
    verify_chain(entries)
    # Mutations of the last event alone are invisible without an outside head; that is tested above.
    i = data.draw(st.integers(min_value=0, max_value=n - 2), label="index")
    if mutation == "edit":
        entries[i] = replace(entries[i], actor=entries[i].actor + "!")
    elif mutation == "edit_and_rehash":
        edited = replace(entries[i], details={"forged": True})
        entries[i] = replace(edited, hash=edited.digest())
    elif mutation == "delete":
        del entries[i]
    elif mutation == "insert":
        entries.insert(i + 1, chain(entries[i], at="t", event="forged", actor="mallory", details={}))
    elif mutation == "swap":
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    else:
        entries.insert(i + 1, entries[i])
    with pytest.raises(IntegrityError, match=r"seq"):
        verify_chain(entries)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=1, max_value=12), data=st.data())
def test_property_truncation_is_detected_against_the_head(n: int, data: st.DataObject) -> None:
    entries = build(n)
    keep = data.draw(st.integers(min_value=0, max_value=n - 1), label="kept")
    with pytest.raises(IntegrityError, match="truncated"):
        verify_chain(entries[:keep], expected_head=entries[-1].hash)
