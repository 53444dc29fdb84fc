"""The Chinese national ("ShangMi", SM) algorithms: SM3 hashing, SM4-GCM encryption, SM2 signatures.

* **SM3** (GB/T 32905-2016, ISO/IEC 10118-3) through ``cryptography`` (OpenSSL's implementation).
* **SM4-GCM**: the block cipher SM4 (GB/T 32907-2016, ISO/IEC 18033-3) in Galois/Counter Mode (NIST SP
  800-38D; GB/T 36624-2018), the AEAD construction RFC 8998 §3.1 specifies for TLS 1.3, through
  ``cryptography``'s ``Cipher(SM4, GCM)``. A blob is ``nonce (12 bytes) || ciphertext || tag (16
  bytes)``, the same layout as :mod:`crypto.envelope`; the nonce is random per seal (SP 800-38D §8.3
  bounds one key to 2**32 seals, far above what one data key ever seals). SM4 keys are 128 bits.
* **SM2** digital signatures (GB/T 32918.2-2016, ISO/IEC 14888-3) on the recommended curve (GB/T
  32918.5-2017), with SM3 and the default distinguishing identifier ``1234567812345678`` (GM/T
  0009-2012 §10), through ``tongsuopy``: the Python binding of Tongsuo, the OpenAtom Foundation's
  OpenSSL fork (formerly BabaSSL) whose SM2 code is the one OpenSSL itself carries. ``cryptography``
  has SM3 and SM4 but no SM2. The pure-Python ``gmssl`` was rejected: it draws the SM2 nonce ``k`` from
  ``random.choice`` (a Mersenne Twister, predictable), which leaks the private key. Keys travel as raw
  bytes: a 32-byte big-endian private scalar and the 65-byte uncompressed public point ``04 || x ||
  y``; signatures are the DER ``SEQUENCE {r, s}`` of GM/T 0009-2012 §7.

Known-answer tests from the standards' vectors: ``tests/crypto/test_crypto_sm.py``.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from tongsuopy.crypto import hashes as sm_hashes
from tongsuopy.crypto import serialization as sm_serialization
from tongsuopy.crypto.asymciphers import ec as sm_ec
from tongsuopy.crypto.exceptions import InvalidSignature as SmInvalidSignature

from crypto.errors import CryptoError, IntegrityError

SM4_KEY_BYTES = 16
SM4_GCM_NONCE_BYTES = 12
SM4_GCM_TAG_BYTES = 16
SM2_PRIVATE_BYTES = 32
SM2_PUBLIC_BYTES = 65
#: Largest DER ``SEQUENCE {r, s}`` of two 256-bit integers (each may need a leading zero byte).
SM2_SIGNATURE_MAX_BYTES = 72


def sm3_hex(data: bytes) -> str:
    """Lowercase hex SM3 (GB/T 32905-2016) of ``data``.

    >>> sm3_hex(b"abc")[:16]  # GB/T 32905-2016 Appendix A.1
    '66c7f0f462eeedd9'
    """
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


class Sm3:
    """An incremental SM3 with ``hashlib``'s ``update``/``hexdigest`` shape (a large table is hashed
    as it is written, without a copy).

    >>> h = Sm3()
    >>> h.update(b"a"); h.update(b"bc")
    >>> h.hexdigest() == sm3_hex(b"abc")
    True
    """

    def __init__(self) -> None:
        self._hash = hashes.Hash(hashes.SM3())

    def update(self, data: bytes) -> None:
        # ``cryptography`` takes unsigned-byte buffers only; a pyarrow buffer is signed ("b"): view it as
        # bytes without copying.
        self._hash.update(memoryview(data).cast("B"))

    def hexdigest(self) -> str:
        return self._hash.copy().finalize().hex()


def new_sm4_key() -> bytes:
    """A fresh random 128-bit SM4 key from the operating system's CSPRNG.

    >>> len(new_sm4_key())
    16
    """
    return os.urandom(SM4_KEY_BYTES)


def _check_sm4_key(key: bytes) -> None:
    if len(key) != SM4_KEY_BYTES:
        # The length is safe to report; the key itself never is.
        raise CryptoError(f"SM4-GCM needs a {SM4_KEY_BYTES}-byte key, got {len(key)} bytes")


def sm4_gcm_seal(key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad`` with SM4-GCM; ``nonce || ct || tag``.

    >>> key = new_sm4_key()
    >>> sm4_gcm_unseal(key, sm4_gcm_seal(key, b"rows", aad=b"part-0"), aad=b"part-0")
    b'rows'
    """
    nonce = os.urandom(SM4_GCM_NONCE_BYTES)  # fresh every time: a repeated (key, nonce) breaks GCM
    return nonce + sm4_gcm_encrypt(key, nonce, plaintext, aad=aad)


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """SM4-GCM ``ciphertext || tag`` under a caller-chosen nonce: what :func:`sm4_gcm_seal` does after
    drawing its nonce, and what the RFC 8998 Appendix A.1 vector fixes. Never reuse a nonce with a key;
    call :func:`sm4_gcm_seal` instead."""
    _check_sm4_key(key)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return body + encryptor.tag


def sm4_gcm_unseal(key: bytes, blob: bytes, *, aad: bytes) -> bytes:
    """Decrypt a blob from :func:`sm4_gcm_seal`; :class:`IntegrityError` on a wrong key, aad or tamper."""
    _check_sm4_key(key)
    if len(blob) < SM4_GCM_NONCE_BYTES + SM4_GCM_TAG_BYTES:
        raise IntegrityError(
            f"ciphertext is truncated: {len(blob)} bytes, shorter than nonce and tag "
            f"({SM4_GCM_NONCE_BYTES + SM4_GCM_TAG_BYTES})"
        )
    nonce, body, tag = blob[:SM4_GCM_NONCE_BYTES], blob[SM4_GCM_NONCE_BYTES:-SM4_GCM_TAG_BYTES], blob[-16:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag as exc:
        raise IntegrityError(
            "ciphertext failed authentication: wrong key, wrong associated data, or tampered bytes"
        ) from exc


def _sm2_private(private: bytes) -> Any:  # tongsuopy ships no type information
    if len(private) != SM2_PRIVATE_BYTES:
        raise CryptoError(f"an SM2 private key is {SM2_PRIVATE_BYTES} bytes, got {len(private)} bytes")
    try:
        return sm_ec.derive_private_key(int.from_bytes(private, "big"), sm_ec.SM2())
    except ValueError as exc:
        raise CryptoError("an SM2 private key must be an integer in [1, n-1]") from exc


def sm2_generate() -> bytes:
    """A fresh SM2 private key (32 bytes), generated by Tongsuo from the system's CSPRNG.

    >>> len(sm2_public_key_of(sm2_generate()))
    65
    """
    scalar: int = sm_ec.generate_private_key(sm_ec.SM2()).private_numbers().private_value
    return scalar.to_bytes(SM2_PRIVATE_BYTES, "big")


def sm2_public_key_of(private: bytes) -> bytes:
    """The 65-byte uncompressed public point ``04 || x || y`` of an SM2 private key."""
    point = _sm2_private(private).public_key()
    return bytes(
        point.public_bytes(sm_serialization.Encoding.X962, sm_serialization.PublicFormat.UncompressedPoint)
    )


def sm2_sign(private: bytes, message: bytes) -> bytes:
    """SM2 signature (DER) of ``message`` with SM3 and the default identifier (GB/T 32918.2 §6.1).

    >>> key = sm2_generate()
    >>> sm2_verify(sm2_public_key_of(key), b"receipt", sm2_sign(key, b"receipt"))
    """
    return bytes(_sm2_private(private).sign(message, sm_ec.ECDSA(sm_hashes.SM3())))


def sm2_verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Check an SM2 signature (GB/T 32918.2 §7.1); :class:`IntegrityError` if it does not verify."""
    if len(public) != SM2_PUBLIC_BYTES:
        raise CryptoError(f"an SM2 public key is {SM2_PUBLIC_BYTES} bytes, got {len(public)} bytes")
    if not 8 <= len(signature) <= SM2_SIGNATURE_MAX_BYTES:
        raise IntegrityError(f"an SM2 signature is at most {SM2_SIGNATURE_MAX_BYTES} bytes of DER")
    try:
        key = sm_ec.EllipticCurvePublicKey.from_encoded_point(sm_ec.SM2(), public)
    except ValueError as exc:
        raise CryptoError("the SM2 public key is not a point on the SM2 curve") from exc
    try:
        key.verify(signature, message, sm_ec.ECDSA(sm_hashes.SM3()))
    except (SmInvalidSignature, ValueError) as exc:
        raise IntegrityError("SM2 signature does not verify") from exc
