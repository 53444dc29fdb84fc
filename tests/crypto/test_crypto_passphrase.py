"""Sealing under a passphrase: only the same passphrase and context open it, and no byte can change."""

from __future__ import annotations

import pytest

from crypto.errors import CryptoError, IntegrityError
from crypto.passphrase import open_with_passphrase, seal_with_passphrase

PASSPHRASE = "a long operator passphrase"
# The lowest cost the module accepts keeps these tests fast; the backups use the full cost.
FAST = 10


def test_the_same_passphrase_and_context_open_what_was_sealed() -> None:
    blob = seal_with_passphrase(b"keyring", PASSPHRASE, aad=b"backup-1", log2_n=FAST)
    assert open_with_passphrase(blob, PASSPHRASE, aad=b"backup-1") == b"keyring"
    assert b"keyring" not in blob


def test_two_seals_of_one_message_differ_salt_and_nonce_are_fresh() -> None:
    first = seal_with_passphrase(b"keyring", PASSPHRASE, aad=b"", log2_n=FAST)
    second = seal_with_passphrase(b"keyring", PASSPHRASE, aad=b"", log2_n=FAST)
    assert first != second
    assert first[5:21] != second[5:21]  # the salt


def test_a_wrong_passphrase_or_another_context_is_refused() -> None:
    blob = seal_with_passphrase(b"keyring", PASSPHRASE, aad=b"backup-1", log2_n=FAST)
    with pytest.raises(IntegrityError, match="wrong passphrase"):
        open_with_passphrase(blob, PASSPHRASE + "!", aad=b"backup-1")
    with pytest.raises(IntegrityError, match="wrong passphrase"):
        open_with_passphrase(blob, PASSPHRASE, aad=b"backup-2")


def test_every_changed_byte_is_refused_header_included() -> None:
    blob = seal_with_passphrase(b"keyring", PASSPHRASE, aad=b"", log2_n=FAST)
    for index in range(len(blob)):
        if index == 4:
            continue  # the cost byte: checked below, since most of its values are out of range
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(IntegrityError):
            open_with_passphrase(bytes(tampered), PASSPHRASE, aad=b"")
    cheaper = bytearray(blob)
    cheaper[4] = FAST + 1
    with pytest.raises(IntegrityError):
        open_with_passphrase(bytes(cheaper), PASSPHRASE, aad=b"")


def test_an_absurd_cost_in_the_header_is_refused_before_any_work() -> None:
    blob = bytearray(seal_with_passphrase(b"keyring", PASSPHRASE, aad=b"", log2_n=FAST))
    blob[4] = 40  # 2**40 * 1 KiB of memory if it were believed
    with pytest.raises(IntegrityError, match="out of range"):
        open_with_passphrase(bytes(blob), PASSPHRASE, aad=b"")


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(CryptoError, match="at least 12 characters"):
        seal_with_passphrase(b"keyring", "short", aad=b"")
