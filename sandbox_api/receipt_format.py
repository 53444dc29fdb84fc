"""The byte form of a receipt: what is signed, and the digests of a released result (DESIGN §9).

Pure functions over JSON values, shared by the gateway (which signs) and by offline verification
(``sandbox_api.verify``), so both build the signed bytes the same way. No I/O, no clock.

A receipt is one JSON object. Every member except ``signature`` is signed: the signature is Ed25519
(RFC 8032) over the canonical JSON (``crypto.hashing.canonical_json``) of the receipt without its
``signature`` member. ``kid`` names the signing key, ``signed_at`` is the release time, which must fall
inside that key's validity period.

The result is bound twice: ``result.hash`` is ``policies.result_hash`` of the released table (the
order- and representation-independent canonical form that replay recomputes), and
``result.content_sha256`` plus one ``row_digests`` entry per row bind the exact JSON the operator
received (``columns`` and ``rows`` of ``GET /v1/jobs/{id}/result``), so a saved result file can be
checked offline and an edited row is named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crypto.hashing import canonical_json, sha256_hex
from crypto.signing import SigningKeyPair, sign

RECEIPT_TYPE = "data-sandbox/receipt/v1"
ROW_DIGEST_HEX = 16
# Members a well-formed receipt has; ``signature`` is the only unsigned one.
RECEIPT_FIELDS = (
    "type",
    "job_id",
    "operator",
    "scope",
    "datasets",
    "query",
    "engine",
    "result",
    "suppression",
    "audit_head",
    "signed_at",
    "kid",
    "signature",
)


def signed_bytes(receipt: Mapping[str, Any]) -> bytes:
    """The exact bytes the signature covers: canonical JSON of every member but ``signature``.

    >>> signed_bytes({"b": 1, "a": [1.5], "signature": "00"})
    b'{"a":[1.5],"b":1}'
    """
    return canonical_json({k: v for k, v in receipt.items() if k != "signature"})


def content_sha256(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """SHA-256 of the canonical JSON of the released table exactly as served (columns, rows in order).

    >>> content_sha256(["n"], [[1]]) == content_sha256(["n"], [[1]])
    True
    """
    return sha256_hex(canonical_json({"columns": list(columns), "rows": [list(r) for r in rows]}))


def row_digest(row: Sequence[Any]) -> str:
    """A short digest of one released row (first 16 hex characters of SHA-256 of its canonical JSON).

    >>> row_digest(["North", 12, 3.5])
    '8d84f8ce8d03d77f'
    """
    return sha256_hex(canonical_json(list(row)))[:ROW_DIGEST_HEX]


def output_sha256(output: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a Python job's released ``output`` object."""
    return sha256_hex(canonical_json(dict(output)))


def result_facts(
    *,
    canonical_hash: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    output: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``result`` member of a receipt (``output_sha256`` only for a result with an ``output``)."""
    facts: dict[str, Any] = {
        "hash": canonical_hash,
        "content_sha256": content_sha256(columns, rows),
        "row_count": len(rows),
        "columns": list(columns),
        "row_digests": [row_digest(r) for r in rows],
    }
    if output is not None:
        facts["output_sha256"] = output_sha256(output)
    return facts


def sign_receipt(pair: SigningKeyPair, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` (every member but ``kid`` and ``signature``) signed with ``pair``.

    >>> from crypto.signing import generate_signing_key, verify
    >>> pair = generate_signing_key()
    >>> receipt = sign_receipt(pair, {"type": RECEIPT_TYPE, "job_id": "j1"})
    >>> verify(pair.public, signed_bytes(receipt), bytes.fromhex(receipt["signature"]))
    """
    unsigned = {**body, "kid": pair.kid}
    signature = sign(pair.private, signed_bytes(unsigned))
    return {**unsigned, "signature": signature.hex()}


def receipt_digest(receipt: Mapping[str, Any]) -> str:
    """SHA-256 of the whole receipt (signature included): what the audit log records."""
    return sha256_hex(canonical_json(dict(receipt)))
