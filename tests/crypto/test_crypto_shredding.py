"""The version layer of stored data keys: sealed under a secret that shredding destroys for good."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import IntegrityError, KeyDestroyed
from crypto.keyring import LocalKeyring
from crypto.shredding import ShreddableSecrets, VersionKeys, is_sealed, secret_name

AAD = "health-bureau/citizens/v1"


def _keyring(folder: Path) -> LocalKeyring:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return LocalKeyring.open(folder / "keyring.json", create=True, clock=lambda: moment)


def test_the_keyring_is_a_source_of_shreddable_secrets(tmp_path: Path) -> None:
    assert isinstance(_keyring(tmp_path), ShreddableSecrets)


@settings(max_examples=30, deadline=None)
@given(wrapped=st.binary(min_size=16, max_size=200), other=st.binary(min_size=1, max_size=200))
def test_a_sealed_key_opens_only_under_its_own_version(
    tmp_path_factory: pytest.TempPathFactory, wrapped: bytes, other: bytes
) -> None:
    keys = VersionKeys(_keyring(tmp_path_factory.mktemp("k")))
    stored = keys.seal(AAD, wrapped)
    assert is_sealed(stored)
    assert wrapped not in stored
    assert keys.open(AAD, stored) == wrapped
    keys.seal("health-bureau/citizens/v2", other)
    with pytest.raises(KeyDestroyed):  # v2's secret exists, but v1's name under v2's aad does not open
        keys.open("health-bureau/citizens/v3", stored)


@settings(max_examples=30, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_tampered_byte_after_the_header_is_refused(
    tmp_path_factory: pytest.TempPathFactory, position: int, flip: int
) -> None:
    """(A changed header reads as a pre-layer value, which the KEK then refuses: it lacks DSW1.)"""
    keys = VersionKeys(_keyring(tmp_path_factory.mktemp("k")))
    stored = bytearray(keys.seal(AAD, b"DSW1-wrapped-data-key"))
    stored[4 + position % (len(stored) - 4)] ^= flip
    with pytest.raises(IntegrityError):
        keys.open(AAD, bytes(stored))


def test_after_destroy_every_copy_is_noise_and_the_secret_is_not_recreated(tmp_path: Path) -> None:
    keyring = _keyring(tmp_path)
    keys = VersionKeys(keyring)
    stored = keys.seal(AAD, b"DSW1-wrapped-data-key")
    copy = bytes(stored)  # what a dead tuple, a WAL segment or a backup may keep
    assert keys.destroy(AAD) is True
    with pytest.raises(KeyDestroyed, match="crypto-shredded"):
        keys.open(AAD, copy)
    assert keyring.existing_secret(secret_name(AAD)) is None
    reopened = _keyring(tmp_path)  # and not only in memory: the file no longer holds it
    assert reopened.existing_secret(secret_name(AAD)) is None
    assert secret_name(AAD) not in (tmp_path / "keyring.json").read_text()
    assert keys.destroy(AAD) is False


def test_a_value_stored_before_the_layer_existed_is_read_as_it_is(tmp_path: Path) -> None:
    keys = VersionKeys(_keyring(tmp_path))
    legacy = b"DSW1" + bytes(60)
    assert keys.open(AAD, legacy) == legacy
