"""The byte form of a receipt: what is signed, and the digests of a released result (docs/design.md §9).

Pure functions over JSON values, shared by the gateway (which signs) and by offline verification
(``sandbox_api.client.verify``), so both build the signed bytes the same way. No I/O, no clock. It sits
outside both rooms because both use it: the server never imports the client, and the client never the
server (``tests/sandbox_api/test_import_boundaries.py``).

A receipt is one JSON object. Every member except ``signature`` is signed: the signature is Ed25519
(RFC 8032) over the canonical JSON of the receipt without its ``signature`` member, or SM2 (GB/T
32918.2, with SM3) for ``data-sandbox/receipt/gm/v1``, the format of the ``gm`` profile
(``crypto.profile``), which is v2 with that signature and a ``profile`` member. The ``type`` says which
profile signed a receipt (:func:`profile_of`): v1 and v2 are ``international``. The canonical form
depends on the receipt's ``type``: ``data-sandbox/receipt/v2`` (issued now) uses RFC 8785 (JCS,
``crypto.hashing.jcs_json``), so any language with a JCS library can check it; ``.../v1`` (issued before)
uses ``crypto.hashing.canonical_json`` and is still accepted. Under v2, the digests of released rows
write an integer outside I-JSON's exact range (beyond ±(2**53 - 1), RFC 7493 §2.2) as its decimal
string, because RFC 8785 has no form for it. ``kid`` names the signing key, ``signed_at`` is the
release time, which must fall inside that key's validity period.

The result is bound twice: ``result.hash`` is ``policies.result_hash`` of the released table (the
order- and representation-independent canonical form that replay recomputes), and
``result.content_sha256`` plus one ``row_digests`` entry per row bind the exact JSON the operator
received (``columns`` and ``rows`` of ``GET /v1/jobs/{id}/result``), so a saved result file can be
checked offline and an edited row is named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crypto.errors import IntegrityError
from crypto.hashing import canonical_json, exact_integers, jcs_json, sha256_hex
from crypto.signing import ED25519, SM2, Signer

RECEIPT_TYPE_V1 = "data-sandbox/receipt/v1"
RECEIPT_TYPE_V2 = "data-sandbox/receipt/v2"
RECEIPT_TYPE_GM = "data-sandbox/receipt/gm/v1"
#: The format new receipts are issued in (under the international profile).
RECEIPT_TYPE = RECEIPT_TYPE_V2
#: The format each profile issues receipts in.
RECEIPT_TYPE_BY_PROFILE: Mapping[str, str] = {"international": RECEIPT_TYPE_V2, "gm": RECEIPT_TYPE_GM}
Canonical = Callable[[object], bytes]
#: The canonical JSON form each receipt format signs and hashes with.
FORMS: Mapping[str, Canonical] = {
    RECEIPT_TYPE_V1: canonical_json,
    RECEIPT_TYPE_V2: jcs_json,
    RECEIPT_TYPE_GM: jcs_json,
}
#: The profile, and the signature algorithm, of each receipt format.
PROFILES: Mapping[str, tuple[str, str]] = {
    RECEIPT_TYPE_V1: ("international", ED25519),
    RECEIPT_TYPE_V2: ("international", ED25519),
    RECEIPT_TYPE_GM: ("gm", SM2),
}
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


def form_of(receipt_type: object) -> Canonical:
    """The canonical form of a receipt format; ``IntegrityError`` for a format this code does not know.

    >>> form_of("data-sandbox/receipt/v2") is jcs_json, form_of("data-sandbox/receipt/v1") is canonical_json
    (True, True)
    """
    form = FORMS.get(str(receipt_type))
    if form is None:
        known = ", ".join(sorted(FORMS))
        raise IntegrityError(f"unknown receipt format {receipt_type!r}; this verifier knows {known}")
    return form


def profile_of(receipt_type: object) -> tuple[str, str]:
    """The profile that signs receipts of this format, and its signature algorithm.

    >>> profile_of("data-sandbox/receipt/gm/v1"), profile_of("data-sandbox/receipt/v2")
    (('gm', 'sm2'), ('international', 'ed25519'))
    """
    form_of(receipt_type)  # an unknown format is refused with the same message everywhere
    return PROFILES[str(receipt_type)]


def signed_bytes(receipt: Mapping[str, Any]) -> bytes:
    """The exact bytes the signature covers: canonical JSON of every member but ``signature``, in the
    form of the receipt's ``type``.

    >>> signed_bytes({"type": RECEIPT_TYPE_V2, "b": 1.0, "a": [1.5], "signature": "00"})
    b'{"a":[1.5],"b":1,"type":"data-sandbox/receipt/v2"}'
    >>> signed_bytes({"type": RECEIPT_TYPE_V1, "b": 1.0, "signature": "00"})
    b'{"b":1.0,"type":"data-sandbox/receipt/v1"}'
    """
    return form_of(receipt.get("type"))({k: v for k, v in receipt.items() if k != "signature"})


def _digest_form(form: Canonical) -> Canonical:
    return (lambda value: jcs_json(exact_integers(value))) if form is jcs_json else form


def content_sha256(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, form: Canonical = jcs_json
) -> str:
    """SHA-256 of the canonical JSON of the released table exactly as served (columns, rows in order).

    >>> content_sha256(["n"], [[1]]) == content_sha256(["n"], [[1]])
    True
    """
    body = {"columns": list(columns), "rows": [list(r) for r in rows]}
    return sha256_hex(_digest_form(form)(body))


def row_digest(row: Sequence[Any], *, form: Canonical = jcs_json) -> str:
    """A short digest of one released row (first 16 hex characters of SHA-256 of its canonical JSON).

    >>> row_digest(["North", 12, 3.5], form=canonical_json)
    '8d84f8ce8d03d77f'
    >>> row_digest(["North", 12, 3.5]) == row_digest(["North", 12.0, 3.5])  # RFC 8785: 12.0 is 12
    True
    """
    return sha256_hex(_digest_form(form)(list(row)))[:ROW_DIGEST_HEX]


def output_sha256(output: Mapping[str, Any], *, form: Canonical = jcs_json) -> str:
    """SHA-256 of the canonical JSON of a Python job's released ``output`` object."""
    return sha256_hex(_digest_form(form)(dict(output)))


def result_facts(
    *,
    canonical_hash: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    output: Mapping[str, Any] | None = None,
    form: Canonical = jcs_json,
) -> dict[str, Any]:
    """The ``result`` member of a receipt (``output_sha256`` only for a result with an ``output``)."""
    facts: dict[str, Any] = {
        "hash": canonical_hash,
        "content_sha256": content_sha256(columns, rows, form=form),
        "row_count": len(rows),
        "columns": list(columns),
        "row_digests": [row_digest(r, form=form) for r in rows],
    }
    if output is not None:
        facts["output_sha256"] = output_sha256(output, form=form)
    return facts


def sign_receipt(pair: Signer, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` (every member but ``kid`` and ``signature``) signed with ``pair``, whose algorithm must be
    the one the body's ``type`` names.

    >>> from crypto.signing import generate_signing_key, verify
    >>> pair = generate_signing_key()
    >>> receipt = sign_receipt(pair, {"type": RECEIPT_TYPE, "job_id": "j1"})
    >>> verify(pair.public, signed_bytes(receipt), bytes.fromhex(receipt["signature"]))
    """
    _, algorithm = profile_of(body.get("type"))
    if pair.algorithm != algorithm:
        raise IntegrityError(f"a {body.get('type')} receipt is signed with {algorithm}, not {pair.algorithm}")
    unsigned = {**body, "kid": pair.kid}
    signature = pair.sign(signed_bytes(unsigned))
    return {**unsigned, "signature": signature.hex()}


def receipt_digest(receipt: Mapping[str, Any]) -> str:
    """SHA-256 of the whole receipt (signature included), in its format's form: what the audit log
    records."""
    return sha256_hex(form_of(receipt.get("type"))(dict(receipt)))
