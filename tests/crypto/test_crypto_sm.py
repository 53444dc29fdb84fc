"""Known-answer tests of the national algorithms from the standards' published vectors, and the
profile's round trips, tampers and refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from crypto.audit import (
    CHECKPOINT_TYPE_GM,
    CHECKPOINT_TYPE_V2,
    EVENT_FORMAT_GM,
    chain,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from crypto.errors import CryptoError, IntegrityError
from crypto.profile import PROFILES, profile_named
from crypto.signing import SM2, generate_signing_key, key_id, verify
from crypto.sm import (
    sm2_public_key_of,
    sm2_sign,
    sm2_verify,
    sm3_hex,
    sm4_gcm_encrypt,
    sm4_gcm_seal,
    sm4_gcm_unseal,
)


def test_sm3_matches_gbt_32905_appendix_a_examples() -> None:
    # GB/T 32905-2016 Appendix A.1 ("abc") and A.2 ("abcd" repeated 16 times, 512 bits).
    assert sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3_hex(b"abcd" * 16) == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_sm4_block_matches_gbt_32907_appendix_a_example_1() -> None:
    # GB/T 32907-2016 Appendix A, example 1: key = plaintext = 0123456789abcdeffedcba9876543210.
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (encryptor.update(key) + encryptor.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_gcm_matches_rfc_8998_appendix_a1() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    expected = (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"  # the tag
    )
    sealed = sm4_gcm_encrypt(key, nonce, plaintext, aad=aad)
    assert sealed.hex().upper() == expected
    assert sm4_gcm_unseal(key, nonce + sealed, aad=aad) == plaintext


# GB/T 32918.5-2017 (GM/T 0003.5-2012) signature example on the recommended curve, default user id
# 1234567812345678, message "message digest".
SM2_PRIVATE = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
SM2_PUBLIC = bytes.fromhex(
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
SM2_R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
SM2_S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"


def _der(r_hex: str, s_hex: str) -> bytes:
    """DER ``SEQUENCE {INTEGER r, INTEGER s}`` (GM/T 0009-2012 §7), written out for the test vector."""

    def integer(hex_value: str) -> bytes:
        body = bytes.fromhex(hex_value).lstrip(b"\0")
        if body[0] & 0x80:
            body = b"\0" + body
        return bytes([0x02, len(body)]) + body

    content = integer(r_hex) + integer(s_hex)
    return bytes([0x30, len(content)]) + content


def test_sm2_public_key_and_signature_match_gbt_32918_5_example() -> None:
    assert sm2_public_key_of(SM2_PRIVATE) == SM2_PUBLIC
    sm2_verify(SM2_PUBLIC, b"message digest", _der(SM2_R, SM2_S))


def test_sm2_refuses_the_standard_signature_on_another_message_or_with_s_changed() -> None:
    with pytest.raises(IntegrityError):
        sm2_verify(SM2_PUBLIC, b"message digesT", _der(SM2_R, SM2_S))
    with pytest.raises(IntegrityError):
        sm2_verify(SM2_PUBLIC, b"message digest", _der(SM2_R, SM2_S[:-1] + "B"))


def test_sm2_signs_with_a_fresh_nonce_and_verifies_under_the_standard_key() -> None:
    first, second = sm2_sign(SM2_PRIVATE, b"receipt"), sm2_sign(SM2_PRIVATE, b"receipt")
    assert first != second  # k is random each time (a repeated k would reveal the key)
    sm2_verify(SM2_PUBLIC, b"receipt", first)
    sm2_verify(SM2_PUBLIC, b"receipt", second)


def test_sm4_gcm_round_trip_and_one_byte_tamper_and_wrong_context_fail() -> None:
    aead = PROFILES["gm"].aead
    key = aead.new_key()
    blob = aead.seal(key, b"rows", aad=b"part-0")
    assert aead.unseal(key, blob, aad=b"part-0") == b"rows"
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(IntegrityError):
        aead.unseal(key, flipped, aad=b"part-0")
    with pytest.raises(IntegrityError):
        aead.unseal(key, blob, aad=b"part-1")
    with pytest.raises(IntegrityError):
        sm4_gcm_unseal(key, blob[:20], aad=b"part-0")
    with pytest.raises(CryptoError):
        sm4_gcm_seal(bytes(32), b"rows", aad=b"")  # an AES-256 key is not an SM4 key


def test_sm2_signing_key_verifies_its_signature_and_refuses_ed25519_verification() -> None:
    pair = generate_signing_key(SM2)
    signature = pair.sign(b"checkpoint")
    verify(pair.public, b"checkpoint", signature, algorithm=SM2)
    assert pair.kid == key_id(pair.public)
    with pytest.raises(CryptoError):
        verify(pair.public, b"checkpoint", signature)  # a 65-byte SM2 key is no Ed25519 key


def test_gm_audit_chain_hashes_with_sm3_and_detects_an_edit() -> None:
    first = chain(None, at="t0", event="e", actor="a", details={"n": 1}, format=EVENT_FORMAT_GM)
    second = chain(first, at="t1", event="e", actor="a", details={}, format=EVENT_FORMAT_GM)
    assert verify_chain([first, second]).head_hash == second.hash
    international = chain(None, at="t0", event="e", actor="a", details={"n": 1})
    assert first.hash != international.hash  # SM3, not SHA-256, over the same body but its format
    edited = type(first)(**{**first.__dict__, "details": {"n": 2}})
    with pytest.raises(IntegrityError, match="seq 0: event edited"):
        verify_chain([edited, second])


def test_gm_checkpoint_is_sm2_signed_and_an_ed25519_key_cannot_sign_it() -> None:
    pair = generate_signing_key(SM2)
    cp = sign_checkpoint(pair, seq=3, head_hash="ab" * 32, at="t", type=CHECKPOINT_TYPE_GM)
    verify_checkpoint(cp, {pair.kid: pair.public})
    with pytest.raises(IntegrityError):
        sign_checkpoint(generate_signing_key(), seq=3, head_hash="ab" * 32, at="t", type=CHECKPOINT_TYPE_GM)
    relabelled = replace(cp, type=CHECKPOINT_TYPE_V2)  # now claims Ed25519 under an SM2 key
    with pytest.raises(IntegrityError, match="checkpoint at seq 3: signature does not verify"):
        verify_checkpoint(relabelled, {pair.kid: pair.public})


def test_profiles_name_their_algorithms_and_an_unknown_profile_is_refused() -> None:
    assert profile_named("gm").aead.name == "SM4-GCM"
    assert profile_named("international").aead.name == "AES-256-GCM"
    with pytest.raises(CryptoError, match="unknown crypto profile"):
        profile_named("fips")
    with pytest.raises(CryptoError, match="initialised under another profile"):
        profile_named("international").require_signer(generate_signing_key(SM2))
