"""Known-answer tests of the receipt formats: the bytes a verifier in any language must rebuild.

RFC 8785's own examples pin the canonical form; a receipt signed with a fixed Ed25519 key pins the
signed bytes and the signature (Ed25519 is deterministic, RFC 8032 §5.1.6), so a change of form cannot
pass unnoticed. Receipts of the first format (v1) still verify.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crypto.errors import IntegrityError
from crypto.hashing import canonical_json, jcs_json, sha256_hex
from crypto.signing import SigningKeyPair, SigningKeyRecord
from sandbox_api.client.verify import verify_receipt
from sandbox_api.receipt_format import (
    RECEIPT_TYPE_V1,
    RECEIPT_TYPE_V2,
    result_facts,
    row_digest,
    sign_receipt,
    signed_bytes,
)

# RFC 8785 §3.2.2.3 (numbers) and §3.2.3 (sorting), and Appendix B's number examples.
RFC8785_VECTORS = [
    (
        {
            "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": '\u20ac$\u000f\nA\'B"\\\\"/',
            "literals": [None, True, False],
        },
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    ),
    (
        {
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\U0001f600": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis",
        },
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",'
        '"€":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ),
    ([0.0, -0.0, 1.0, 1e21, 1e-7, 9007199254740991], "[0,0,1,1e+21,1e-7,9007199254740991]"),
]

SEED = bytes(range(32))
BODY = {
    "type": RECEIPT_TYPE_V2,
    "job_id": "0123456789abcdef0123456789abcdef",
    "operator": "alice",
    "scope": {"name": "flu-study-2026", "version_id": "ab" * 32},
    "datasets": {"civil-affairs/citizens": "cd" * 32},
    "query": {"kind": "sql", "mode": "real", "original_sha256": "ef" * 32, "rewritten_sha256": "01" * 32},
    "engine": {"duckdb": "1.4.0"},
    "result": result_facts(canonical_hash="23" * 32, columns=["sex", "n"], rows=[["F", 12], ["M", 14.0]]),
    "suppression": {"min_units": 10, "rows_released": 2, "reasons": ["every released row …"]},
    "audit_head": {"seq": 41, "hash": "45" * 32},
    "signed_at": "2026-12-06T03:00:00+00:00",
}


@pytest.mark.parametrize(("value", "expected"), RFC8785_VECTORS)
def test_rfc8785_vectors(value: object, expected: str) -> None:
    assert jcs_json(value).decode("utf-8") == expected


def test_a_v2_receipt_signs_exactly_these_bytes() -> None:
    pair = SigningKeyPair.from_private(SEED)
    receipt = sign_receipt(pair, BODY)
    message = signed_bytes(receipt)
    assert message == jcs_json({k: v for k, v in receipt.items() if k != "signature"})
    assert sha256_hex(message) == KNOWN_SIGNED_SHA256
    assert receipt["signature"] == KNOWN_SIGNATURE
    assert BODY["result"]["row_digests"] == KNOWN_ROW_DIGESTS


def test_a_v2_row_digest_is_independent_of_the_float_spelling() -> None:
    # A verifier in JavaScript parses 14.0 as 14: RFC 8785 writes both as 14, so the digest matches.
    assert row_digest(["M", 14.0]) == row_digest(["M", 14])


def test_integers_beyond_ijson_are_digested_as_strings() -> None:
    big = 2**63
    assert row_digest(["x", big]) == sha256_hex(jcs_json(["x", str(big)]))[:16]


def _trusted(pair: SigningKeyPair) -> dict[str, SigningKeyRecord]:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    return {pair.kid: SigningKeyRecord(pair.kid, pair.public, since, None, "current")}


def test_v2_and_v1_receipts_both_verify_with_their_results() -> None:
    pair = SigningKeyPair.from_private(SEED)
    rows = [["F", 12], ["M", 14.0]]
    v2 = sign_receipt(pair, BODY)
    verify_receipt(v2, _trusted(pair), result={"columns": ["sex", "n"], "rows": rows})
    v1_body = {
        **BODY,
        "type": RECEIPT_TYPE_V1,
        "result": result_facts(
            canonical_hash="23" * 32, columns=["sex", "n"], rows=rows, form=canonical_json
        ),
    }
    v1 = sign_receipt(pair, v1_body)
    assert signed_bytes(v1) == canonical_json({k: v for k, v in v1.items() if k != "signature"})
    verify_receipt(v1, _trusted(pair), result={"columns": ["sex", "n"], "rows": rows})


def test_an_unknown_format_is_refused() -> None:
    pair = SigningKeyPair.from_private(SEED)
    receipt = sign_receipt(pair, {**BODY, "type": RECEIPT_TYPE_V1})
    known = "data-sandbox/receipt/gm/v1 or data-sandbox/receipt/v1 or data-sandbox/receipt/v2"
    with pytest.raises(IntegrityError, match=f"is not {known}"):
        verify_receipt({**receipt, "type": "data-sandbox/receipt/v9"}, _trusted(pair))


KNOWN_SIGNED_SHA256 = "b757e4e57f8a043da5f8ce25ca45824f1eafd11b2b4bc9870f1308613db3a062"
KNOWN_SIGNATURE = (
    "5202612b9108424d71947e7a1be895296606b3649c162a3cd78dd432839db38c"
    "7fa81638f01a1a8841401b26ef8ac29bcc28ce35c57b6711c4e784d617d13609"
)
KNOWN_ROW_DIGESTS = ["912e8781c353a0a1", "29cedf09ed6b0274"]
