"""Known-answer tests of the audit formats: the bytes an auditor's verifier in any language rebuilds.

Events and checkpoints of format v2 are hashed and signed over RFC 8785 canonical JSON; the expected
bytes below are written out by hand from the RFC (keys sorted by UTF-16 code units, so the emoji, a
surrogate pair, sorts before U+FB33; ``2.0`` is ``2``; ``1e-7`` stays ``1e-7``). The Ed25519 signatures
are pinned too (deterministic, RFC 8032 §5.1.6). Events and checkpoints of v1 still verify, and
relabelling an entry from one format to the other is an edit.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from crypto.audit import (
    CHECKPOINT_TYPE,
    CHECKPOINT_TYPE_V1,
    CHECKPOINT_TYPE_V2,
    EVENT_FORMAT,
    EVENT_FORMAT_V1,
    EVENT_FORMAT_V2,
    GENESIS,
    AuditEntry,
    Checkpoint,
    chain,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from crypto.errors import IntegrityError
from crypto.hashing import sha256_hex
from crypto.signing import SigningKeyPair

AT = "2026-12-06T03:00:00+00:00"
DETAILS = {"job": "j1", "epsilon": 0.5, "rows": 2.0, "tiny": 1e-7, "\U0001f600": "x", "\ufb33": "y"}
PAIR = SigningKeyPair.from_private(bytes(range(32)))

V2_BODY = (
    '{"actor":"alice","at":"2026-12-06T03:00:00+00:00",'
    '"details":{"epsilon":0.5,"job":"j1","rows":2,"tiny":1e-7,"\U0001f600":"x","\ufb33":"y"},'
    '"event":"job.released","format":"data-sandbox/audit-event/v2",'
    f'"prev_hash":"{GENESIS}","seq":0}}'
)
V2_HASH = "364de4c01c9ffedad010d577519bb62c0615e9688a26259d10d1918100f8fa4b"
# The first format: Python's float repr, keys sorted by code point (U+FB33 before the emoji).
V1_BODY = (
    '{"actor":"alice","at":"2026-12-06T03:00:00+00:00",'
    '"details":{"epsilon":0.5,"job":"j1","rows":2.0,"tiny":1e-07,"\ufb33":"y","\U0001f600":"x"},'
    f'"event":"job.released","prev_hash":"{GENESIS}","seq":0}}'
)
V1_HASH = "d673020b49e8d872db70eeb67cc893618d56237a820595ba41d0befacfea748c"

HEAD = "45" * 32
V2_MESSAGE = (
    f'{{"at":"{AT}","head_hash":"{HEAD}","kid":"56475aa75463474c","seq":41,'
    '"type":"data-sandbox/audit-checkpoint/v2"}'
)
V2_SIGNATURE = (
    "0bd969eb21e67cfdcce8168c5a5b870d4e5224f460f4e7859d6001d96e4010f0"
    "9b47bf2147a84f6c56e5ad32f185ee8e281f6dff2c277a08d174c73959448f01"
)
# A checkpoint line as the first format stored it: no type member.
V1_LINE = (
    f'{{"at":"{AT}","head_hash":"{HEAD}","kid":"56475aa75463474c","seq":41,"signature":'
    '"85449fcac3b098be7875d2df46b7f8d0085796ef512b8f3147391baf62c93a5f'
    'b41282aaf4a140ceddddfe0a1662638fcf7f2a443bc450bba72257ae14ce9a0e"}'
)


def _released(format: str = EVENT_FORMAT) -> AuditEntry:
    return chain(None, at=AT, event="job.released", actor="alice", details=DETAILS, format=format)


def test_new_events_and_checkpoints_use_the_rfc8785_formats() -> None:
    assert EVENT_FORMAT == EVENT_FORMAT_V2
    assert CHECKPOINT_TYPE == CHECKPOINT_TYPE_V2
    assert _released().format == EVENT_FORMAT_V2


def test_a_v2_event_hashes_exactly_its_rfc8785_bytes() -> None:
    entry = _released()
    assert sha256_hex(V2_BODY.encode("utf-8")) == V2_HASH
    assert entry.hash == V2_HASH
    assert json.loads(entry.to_json()) == {**json.loads(V2_BODY), "hash": V2_HASH}


def test_a_v2_event_hash_does_not_depend_on_how_a_number_was_written() -> None:
    # A database or another language may read 2.0 back as 2: under RFC 8785 both are the same bytes.
    assert replace(_released(), details={**DETAILS, "rows": 2}).digest() == V2_HASH


def test_a_v1_event_still_hashes_its_first_form_and_verifies() -> None:
    entry = _released(EVENT_FORMAT_V1)
    assert sha256_hex(V1_BODY.encode("utf-8")) == V1_HASH
    assert entry.hash == V1_HASH
    assert "format" not in json.loads(entry.to_json())
    assert AuditEntry.from_json(entry.to_json()) == entry
    assert verify_chain([entry]).head_hash == V1_HASH


def test_a_chain_begun_in_v1_goes_on_in_v2() -> None:
    old = _released(EVENT_FORMAT_V1)
    new = chain(old, at=AT, event="job.submitted", actor="bob", details={"share": 0.25})
    read_back = [AuditEntry.from_json(e.to_json()) for e in (old, new)]
    assert [e.format for e in read_back] == [EVENT_FORMAT_V1, EVENT_FORMAT_V2]
    assert verify_chain(read_back).count == 2


@pytest.mark.parametrize(
    ("original", "relabelled"), [(EVENT_FORMAT_V2, EVENT_FORMAT_V1), (EVENT_FORMAT_V1, EVENT_FORMAT_V2)]
)
def test_relabelling_an_event_format_is_an_edit(original: str, relabelled: str) -> None:
    forged = replace(_released(original), format=relabelled)
    with pytest.raises(IntegrityError, match="seq 0: event edited"):
        verify_chain([forged])


def test_an_event_of_an_unknown_format_is_refused() -> None:
    line = json.loads(_released().to_json())
    with pytest.raises(IntegrityError, match="audit-event/v9"):
        AuditEntry.from_json(json.dumps({**line, "format": "data-sandbox/audit-event/v9"}))


def test_a_v2_checkpoint_signs_exactly_its_rfc8785_bytes() -> None:
    cp = sign_checkpoint(PAIR, seq=41, head_hash=HEAD, at=AT)
    assert cp.message() == V2_MESSAGE.encode("utf-8")
    assert cp.signature.hex() == V2_SIGNATURE
    assert Checkpoint.from_json(cp.to_json()) == cp
    verify_checkpoint(Checkpoint.from_json(cp.to_json()), {PAIR.kid: PAIR.public})


def test_a_checkpoint_line_stored_in_v1_still_verifies() -> None:
    cp = Checkpoint.from_json(V1_LINE)
    assert cp.type == CHECKPOINT_TYPE_V1
    verify_checkpoint(cp, {PAIR.kid: PAIR.public})
    assert cp.to_json() == V1_LINE


def test_relabelling_a_checkpoint_format_breaks_its_signature() -> None:
    cp = Checkpoint.from_json(V1_LINE)
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_checkpoint(replace(cp, type=CHECKPOINT_TYPE_V2), {PAIR.kid: PAIR.public})


def test_a_checkpoint_of_an_unknown_format_is_refused() -> None:
    line = json.loads(V1_LINE)
    with pytest.raises(IntegrityError, match="audit-checkpoint/v9"):
        Checkpoint.from_json(json.dumps({**line, "type": "data-sandbox/audit-checkpoint/v9"}))


def test_an_integer_beyond_the_exact_range_is_recorded_as_its_decimal_string() -> None:
    # RFC 8785 has no form for 2**60; an event must still be written, and verify, whatever it holds.
    entry = chain(None, at=AT, event="dataset.uploaded", actor="sam", details={"bytes": 2**60, "rows": 12})
    assert entry.details == {"bytes": "1152921504606846976", "rows": 12}
    assert verify_chain([AuditEntry.from_json(entry.to_json())]).count == 1
