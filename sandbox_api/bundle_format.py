"""The names of the auditor's documents: the published signing keys and the audit bundle.

Shared by the gateway (which writes them) and the offline verifier (which reads them), so it sits
outside both rooms.

An audit bundle ``.../audit-bundle/v2`` holds events and checkpoints of either format of
``crypto.audit`` (a chain begun under v1 keeps its v1 events; everything after the upgrade is v2, hashed
and signed over RFC 8785 canonical JSON). A ``.../audit-bundle/v1`` was written before v2 existed and
holds v1 events and checkpoints only; the verifier still accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping

from crypto.audit import CHECKPOINT_TYPE_V1, EVENT_FORMAT_V1

#: ``GET /v1/keys/signing`` and ``sandbox keys export``: every signing key with its validity period.
KEYS_FORMAT = "data-sandbox/signing-keys/v1"
BUNDLE_FORMAT_V1 = "data-sandbox/audit-bundle/v1"
BUNDLE_FORMAT_V2 = "data-sandbox/audit-bundle/v2"
#: ``GET /v1/audit/bundle``: events, signed checkpoints and the public keys in one JSON document.
BUNDLE_FORMAT = BUNDLE_FORMAT_V2
#: The bundle formats this code knows, each with the only event and checkpoint formats it may hold
#: (None: any format crypto.audit knows).
BUNDLE_FORMATS: Mapping[str, tuple[str, str] | None] = {
    BUNDLE_FORMAT_V1: (EVENT_FORMAT_V1, CHECKPOINT_TYPE_V1),
    BUNDLE_FORMAT_V2: None,
}
