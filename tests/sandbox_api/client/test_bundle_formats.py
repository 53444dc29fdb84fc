"""The audit bundle formats: v2 (written now) and v1 (written before) both verify offline.

A v1 bundle holds v1 events and checkpoints only (it was written before v2 existed); a v2 bundle holds
a chain that may have begun in v1 and goes on in v2. Built here from a fixed key, without a server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crypto.audit import (
    CHECKPOINT_TYPE_V1,
    EVENT_FORMAT_V1,
    EVENT_FORMAT_V2,
    AuditEntry,
    chain,
    sign_checkpoint,
)
from crypto.errors import IntegrityError
from crypto.signing import SigningKeyPair, SigningKeyRecord
from sandbox_api.bundle_format import BUNDLE_FORMAT, BUNDLE_FORMAT_V1, BUNDLE_FORMAT_V2
from sandbox_api.client.verify import verify_bundle

PAIR = SigningKeyPair.from_private(bytes(range(32)))
KEY = SigningKeyRecord(
    kid=PAIR.kid,
    public=PAIR.public,
    not_before=datetime(2026, 1, 1, tzinfo=UTC),
    not_after=None,
    state="current",
)
AT = "2026-12-06T03:00:00+00:00"


def _events(formats: list[str]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for seq, format in enumerate(formats):
        prev = entries[-1] if entries else None
        details = {"seq": seq, "share": seq / 3}
        entries.append(
            chain(prev, at=AT, event="job.released", actor="alice", details=details, format=format)
        )
    return entries


def _bundle(bundle_format: str, formats: list[str], *, checkpoint_type: str) -> dict[str, Any]:
    entries = _events(formats)
    head = sign_checkpoint(PAIR, seq=entries[-1].seq, head_hash=entries[-1].hash, at=AT, type=checkpoint_type)
    return {
        "format": bundle_format,
        "head": {"seq": head.seq, "hash": head.head_hash, "checkpoint": head.to_dict()},
        "events": [json.loads(e.to_json()) for e in entries],
        "checkpoints": [],
        "signing_keys": [KEY.to_dict()],
    }


def test_the_gateway_writes_v2_bundles() -> None:
    assert BUNDLE_FORMAT == BUNDLE_FORMAT_V2


def test_a_v1_bundle_still_verifies() -> None:
    bundle = _bundle(BUNDLE_FORMAT_V1, [EVENT_FORMAT_V1] * 3, checkpoint_type=CHECKPOINT_TYPE_V1)
    assert all("format" not in e for e in bundle["events"])
    report = verify_bundle(bundle)
    assert (report.count, report.checkpoints) == (3, 1)


def test_a_v2_bundle_holds_a_chain_that_began_in_v1() -> None:
    bundle = _bundle(
        BUNDLE_FORMAT_V2,
        [EVENT_FORMAT_V1, EVENT_FORMAT_V1, EVENT_FORMAT_V2],
        checkpoint_type="data-sandbox/audit-checkpoint/v2",
    )
    assert verify_bundle(bundle, trusted_keys={KEY.kid: KEY}).count == 3


def test_a_v1_bundle_cannot_hold_a_v2_event() -> None:
    bundle = _bundle(BUNDLE_FORMAT_V1, [EVENT_FORMAT_V1, EVENT_FORMAT_V2], checkpoint_type=CHECKPOINT_TYPE_V1)
    with pytest.raises(IntegrityError, match="seq 1: a data-sandbox/audit-bundle/v1 bundle cannot hold"):
        verify_bundle(bundle)


def test_a_v1_bundle_cannot_hold_a_v2_checkpoint() -> None:
    bundle = _bundle(BUNDLE_FORMAT_V1, [EVENT_FORMAT_V1], checkpoint_type="data-sandbox/audit-checkpoint/v2")
    with pytest.raises(IntegrityError, match="checkpoint at seq 0: a data-sandbox/audit-bundle/v1 bundle"):
        verify_bundle(bundle)


def test_a_bundle_of_an_unknown_format_is_refused() -> None:
    bundle = _bundle("data-sandbox/audit-bundle/v9", [EVENT_FORMAT_V2], checkpoint_type=CHECKPOINT_TYPE_V1)
    with pytest.raises(IntegrityError, match="not an audit bundle"):
        verify_bundle(bundle)
