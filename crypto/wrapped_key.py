"""The wrapped data key's byte layout: which KEK wrapped it, and the associated data that binds it.

Layout: ``MAGIC || len(kid) (1 byte) || kid (ASCII) || nonce || ciphertext+tag``. Naming the KEK in
the blob is what lets every KEK still in the keyring unwrap after a rotation.
"""

from __future__ import annotations

from crypto.errors import IntegrityError

__all__ = ["WRAP_MAGIC", "join_wrapped", "kek_id_of", "split_wrapped", "wrap_aad"]

WRAP_MAGIC = b"DSW1"
_WRAP_AAD_LABEL = b"data-sandbox/wrap/v1"


def kek_id_of(wrapped: bytes) -> str:
    """The id of the KEK that wrapped ``wrapped``; :class:`IntegrityError` if the blob is malformed.

    >>> kek_id_of(b"DSW1" + bytes([4]) + b"k123" + bytes(28))
    'k123'
    """
    return split_wrapped(wrapped)[0]


def join_wrapped(kid: str, sealed: bytes) -> bytes:
    """The wrapped blob for ``sealed`` (nonce || ciphertext+tag) under the KEK ``kid``."""
    kid_bytes = kid.encode("ascii")
    return WRAP_MAGIC + bytes([len(kid_bytes)]) + kid_bytes + sealed


def split_wrapped(wrapped: bytes) -> tuple[str, bytes]:
    """``(kid, sealed)`` from a wrapped blob; :class:`IntegrityError` if the header is damaged."""
    header = len(WRAP_MAGIC) + 1
    if len(wrapped) < header or not wrapped.startswith(WRAP_MAGIC):
        raise IntegrityError("wrapped data key is malformed: it does not start with the wrapped-key header")
    kid_len = wrapped[len(WRAP_MAGIC)]
    kid_bytes = wrapped[header : header + kid_len]
    if kid_len == 0 or len(kid_bytes) != kid_len or not kid_bytes.isascii():
        raise IntegrityError("wrapped data key is malformed: its key-encryption key id is damaged")
    return kid_bytes.decode("ascii"), wrapped[header + kid_len :]


def wrap_aad(domain: str, kid: str, aad: bytes) -> bytes:
    """The associated data a KEK seals a data key under: the caller's ``aad`` bound to domain and KEK."""
    # Length-prefixed so that no (domain, kid, aad) triple can collide with another.
    parts = (_WRAP_AAD_LABEL, domain.encode("utf-8"), kid.encode("ascii"), aad)
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)
