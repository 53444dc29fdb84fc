"""No key material in reprs or error messages: every failure path is tried and its text searched."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crypto.audit import sign_checkpoint, verify_checkpoint
from crypto.envelope import new_data_key, seal, unseal
from crypto.errors import CryptoError
from crypto.keyring import LocalKeyring
from crypto.signing import generate_signing_key, sign, verify

AAD = b"ds/v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def encodings(key: bytes) -> Iterator[str]:
    """Every way a key could show up in text."""
    yield key.hex()
    yield key.hex().upper()
    yield base64.b64encode(key).decode()
    yield base64.urlsafe_b64encode(key).decode().rstrip("=")
    yield repr(key)[2:-1]
    yield str(list(key))[1:-1]


def assert_no_key(text: str, keys: list[bytes]) -> None:
    for key in keys:
        for form in encodings(key):
            assert form not in text, "key material leaked into text"


def all_keys(path: Path) -> list[bytes]:
    doc = json.loads(path.read_text())
    keys = [base64.b64decode(k["key"]) for keks in doc["domains"].values() for k in keks]
    keys += [base64.b64decode(s["key"]) for s in doc["secrets"].values()]
    keys += [base64.b64decode(s["private"]) for s in doc["signing_keys"]]
    return keys


@pytest.fixture
def populated(tmp_path: Path) -> tuple[LocalKeyring, bytes, bytes]:
    keyring = LocalKeyring.open(tmp_path / "keyring.json", create=True)
    keyring.ensure_domain("d")
    data_key = new_data_key()
    wrapped = keyring.wrap("d", data_key, aad=AAD)
    keyring.rotate("d")
    keyring.secret("pseudonym-master")
    keyring.ensure_signing_key(now=T0)
    return keyring, data_key, wrapped


def test_reprs_hold_no_key_material(populated: tuple[LocalKeyring, bytes, bytes]) -> None:
    keyring, data_key, _ = populated
    keys = [*all_keys(keyring.path), data_key]
    pair = keyring.current_signing_key()
    texts = [repr(keyring), str(keyring), repr(pair), str(pair), repr(keyring.signing_keys())]
    texts.append(repr(keyring.domain_keys("d")))
    cp = sign_checkpoint(pair, seq=1, head_hash="a" * 64, at="t")
    texts.append(repr(cp))
    for text in texts:
        assert_no_key(text, keys)


def test_the_leak_detector_can_see_a_leak(populated: tuple[LocalKeyring, bytes, bytes]) -> None:
    keyring, _, _ = populated
    pair = keyring.current_signing_key()
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_key(f"oops {pair.private!r}", [pair.private])


def failures(keyring: LocalKeyring, data_key: bytes, wrapped: bytes) -> dict[str, Callable[[], object]]:
    pair = keyring.current_signing_key()
    blob = seal(data_key, b"rows", aad=AAD)
    other = generate_signing_key()

    def loosened() -> object:
        keyring.path.chmod(0o644)
        try:
            return LocalKeyring.open(keyring.path)
        finally:
            keyring.path.chmod(0o600)

    return {
        "wrong aad on unwrap": lambda: keyring.unwrap("d", wrapped, aad=b"other"),
        "tampered wrapped key": lambda: keyring.unwrap("d", wrapped[:-1] + bytes([wrapped[-1] ^ 1]), aad=AAD),
        "unknown domain": lambda: keyring.unwrap("x", wrapped, aad=AAD),
        "unseal with wrong aad": lambda: unseal(data_key, blob, aad=b"other"),
        "unseal truncated": lambda: unseal(data_key, blob[:5], aad=AAD),
        "short key": lambda: seal(data_key[:31], b"rows", aad=AAD),
        "bad signature": lambda: verify(pair.public, b"m", sign(other.private, b"m")),
        "short private key": lambda: sign(pair.private[:31], b"m"),
        "forged checkpoint": lambda: verify_checkpoint(
            replace(sign_checkpoint(pair, seq=1, head_hash="a" * 64, at="t"), seq=2), {pair.kid: pair.public}
        ),
        "permissive file": loosened,
    }


FAILURES = [
    "wrong aad on unwrap",
    "tampered wrapped key",
    "unknown domain",
    "unseal with wrong aad",
    "unseal truncated",
    "short key",
    "bad signature",
    "short private key",
    "forged checkpoint",
    "permissive file",
]


@pytest.mark.parametrize("case", FAILURES)
def test_error_messages_hold_no_key_material(populated: tuple[LocalKeyring, bytes, bytes], case: str) -> None:
    keyring, data_key, wrapped = populated
    keys = [*all_keys(keyring.path), data_key]
    with pytest.raises(CryptoError) as raised:
        failures(keyring, data_key, wrapped)[case]()
    error: BaseException | None = raised.value
    while error is not None:  # the whole chain of causes, as a traceback would print it
        assert_no_key(str(error), keys)
        assert_no_key(repr(error), keys)
        error = error.__cause__ or error.__context__


def test_malformed_file_message_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    keyring = LocalKeyring.open(path, create=True)
    keyring.ensure_domain("d")
    keys = all_keys(path)
    path.write_text(path.read_text()[:-40])  # cut inside the document: invalid JSON holding keys
    with pytest.raises(CryptoError) as raised:
        LocalKeyring.open(path)
    assert "malformed" in raised.value.detail
    assert_no_key(str(raised.value), keys)
    assert raised.value.__cause__ is None
