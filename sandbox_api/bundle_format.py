"""The names of the auditor's documents: the published signing keys and the audit bundle.

Shared by the gateway (which writes them) and the offline verifier (which reads them), so it sits
outside both rooms.
"""

from __future__ import annotations

#: ``GET /v1/keys/signing`` and ``sandbox keys export``: every signing key with its validity period.
KEYS_FORMAT = "data-sandbox/signing-keys/v1"
#: ``GET /v1/audit/bundle``: events, signed checkpoints and the public keys in one JSON document.
BUNDLE_FORMAT = "data-sandbox/audit-bundle/v1"
