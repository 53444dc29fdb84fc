"""The local keyring: wrapping, rotation, rewrap, secrets, signing keys, file safety, concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crypto.envelope import new_data_key, seal, unseal
from crypto.errors import CryptoError, IntegrityError, KeyringError, UnknownKey
from crypto.keyring import KeyProvider, LocalKeyring, kek_id_of
from crypto.signing import sign, verify

REPO = Path(__file__).resolve().parents[2]
AAD = b"health-bureau/visits/3f2a"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.open(tmp_path / "state" / "keyring.json", create=True)


def test_local_keyring_is_a_key_provider(keyring: LocalKeyring) -> None:
    assert isinstance(keyring, KeyProvider)


# -- the file ---------------------------------------------------------------------------------------


def test_created_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    old_umask = os.umask(0o000)  # even a wide-open umask must not widen the file
    try:
        keyring = LocalKeyring.open(path, create=True)
        keyring.ensure_domain("health-bureau")
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keyring.json.lock").stat().st_mode & 0o077 == 0


def test_writes_leave_no_temporary_files(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    keyring.rotate("d")
    keyring.secret("s")
    assert sorted(p.name for p in keyring.path.parent.iterdir()) == ["keyring.json", "keyring.json.lock"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o606])
def test_group_or_world_accessible_file_is_refused_on_open(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyring.open(path, create=True)
    path.chmod(mode)
    with pytest.raises(KeyringError, match=r"chmod 600") as raised:
        LocalKeyring.open(path)
    assert f"{mode:04o}" in raised.value.detail


def test_file_loosened_while_open_is_refused_on_next_use(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    wrapped = keyring.wrap("d", new_data_key(), aad=AAD)
    keyring.path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        keyring.unwrap("d", wrapped, aad=AAD)


def test_missing_file_without_create_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="no keyring file"):
        LocalKeyring.open(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        json.dumps({"format": "data-sandbox-keyring", "version": 99}).encode(),
        json.dumps(
            {
                "format": "data-sandbox-keyring",
                "version": 1,
                "domains": {"d": [{"kid": "a", "key": "AAAA", "created_at": "t", "state": "current"}]},
                "secrets": {},
                "signing_keys": [],
            }
        ).encode(),
    ],
    ids=["not-json", "not-a-keyring", "future-version", "short-key"],
)
def test_malformed_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError, match="malformed"):
        LocalKeyring.open(path)


def test_state_survives_reopening(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    data_key = new_data_key()
    wrapped = keyring.wrap("d", data_key, aad=AAD)
    secret = keyring.secret("partition")
    pair = keyring.ensure_signing_key(now=T0)
    again = LocalKeyring.open(keyring.path)
    assert again.unwrap("d", wrapped, aad=AAD) == data_key
    assert again.secret("partition") == secret
    assert again.current_signing_key() == pair


# -- wrapping ---------------------------------------------------------------------------------------


def test_wrap_unwrap_round_trip_names_the_kek(keyring: LocalKeyring) -> None:
    kid = keyring.ensure_domain("health-bureau")
    data_key = new_data_key()
    wrapped = keyring.wrap("health-bureau", data_key, aad=AAD)
    assert kek_id_of(wrapped) == kid
    assert keyring.unwrap("health-bureau", wrapped, aad=AAD) == data_key


def test_ensure_domain_is_idempotent(keyring: LocalKeyring) -> None:
    assert keyring.ensure_domain("d") == keyring.ensure_domain("d")
    assert len(keyring.domain_keys("d")) == 1
    assert keyring.domains() == ["d"]


def test_wrong_aad_is_refused(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    wrapped = keyring.wrap("d", new_data_key(), aad=b"dataset-a/v1")
    with pytest.raises(IntegrityError, match="failed authentication"):
        keyring.unwrap("d", wrapped, aad=b"dataset-b/v1")


def test_key_wrapped_for_one_domain_does_not_unwrap_in_another(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("civil-affairs")
    keyring.ensure_domain("health-bureau")
    wrapped = keyring.wrap("civil-affairs", new_data_key(), aad=AAD)
    with pytest.raises(UnknownKey, match="health-bureau"):
        keyring.unwrap("health-bureau", wrapped, aad=AAD)


def test_unknown_kek_id_is_refused(tmp_path: Path) -> None:
    ours = LocalKeyring.open(tmp_path / "a.json", create=True)
    theirs = LocalKeyring.open(tmp_path / "b.json", create=True)
    ours.ensure_domain("d")
    theirs.ensure_domain("d")
    wrapped = theirs.wrap("d", new_data_key(), aad=AAD)
    with pytest.raises(UnknownKey, match=kek_id_of(wrapped)):
        ours.unwrap("d", wrapped, aad=AAD)


def test_unknown_domain_is_refused(keyring: LocalKeyring) -> None:
    with pytest.raises(UnknownKey, match="ensure_domain"):
        keyring.wrap("nowhere", new_data_key(), aad=AAD)
    with pytest.raises(UnknownKey, match="rotate"):
        keyring.rotate("nowhere")


def test_kid_header_pointing_at_another_kek_is_refused(keyring: LocalKeyring) -> None:
    old_kid = keyring.ensure_domain("d")
    keyring.rotate("d")
    wrapped = keyring.wrap("d", new_data_key(), aad=AAD)
    relabelled = wrapped.replace(kek_id_of(wrapped).encode(), old_kid.encode(), 1)
    with pytest.raises(IntegrityError):
        keyring.unwrap("d", relabelled, aad=AAD)


@pytest.mark.parametrize("index", [0, 4, 5, 12, -1])
def test_one_byte_tamper_of_a_wrapped_key_is_refused(keyring: LocalKeyring, index: int) -> None:
    keyring.ensure_domain("d")
    wrapped = bytearray(keyring.wrap("d", new_data_key(), aad=AAD))
    wrapped[index] ^= 0x01
    with pytest.raises((IntegrityError, UnknownKey)):
        keyring.unwrap("d", bytes(wrapped), aad=AAD)


@pytest.mark.parametrize("blob", [b"", b"DSW1", b"XXXX\x04abcd" + bytes(28), b"DSW1\x00" + bytes(28)])
def test_malformed_wrapped_key_is_refused(keyring: LocalKeyring, blob: bytes) -> None:
    keyring.ensure_domain("d")
    with pytest.raises(IntegrityError, match="malformed"):
        keyring.unwrap("d", blob, aad=AAD)


# -- rotation ---------------------------------------------------------------------------------------


def test_rotation_keeps_old_wrapped_keys_unwrappable(keyring: LocalKeyring) -> None:
    first = keyring.ensure_domain("d")
    data_key = new_data_key()
    wrapped = keyring.wrap("d", data_key, aad=AAD)
    second = keyring.rotate("d")
    assert second != first
    assert keyring.unwrap("d", wrapped, aad=AAD) == data_key
    assert kek_id_of(keyring.wrap("d", data_key, aad=AAD)) == second
    states = [(k.kid, k.state) for k in keyring.domain_keys("d")]
    assert states == [(first, "retired"), (second, "current")]


def test_rewrap_moves_the_key_to_the_current_kek_without_touching_data(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    data_key = new_data_key()
    part = seal(data_key, b"encrypted parquet part", aad=b"d/ds/v1/t/0")
    wrapped = keyring.wrap("d", data_key, aad=AAD)
    current = keyring.rotate("d")
    rewrapped = keyring.rewrap("d", wrapped, aad=AAD)
    assert kek_id_of(rewrapped) == current
    assert (
        unseal(keyring.unwrap("d", rewrapped, aad=AAD), part, aad=b"d/ds/v1/t/0") == b"encrypted parquet part"
    )


def test_rewrap_keeps_the_aad_binding(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    wrapped = keyring.wrap("d", new_data_key(), aad=AAD)
    keyring.rotate("d")
    rewrapped = keyring.rewrap("d", wrapped, aad=AAD)
    with pytest.raises(IntegrityError):
        keyring.unwrap("d", rewrapped, aad=b"another version")
    with pytest.raises(IntegrityError):
        keyring.rewrap("d", wrapped, aad=b"another version")


def test_rotation_by_another_instance_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    reader = LocalKeyring.open(path, create=True)
    reader.ensure_domain("d")
    writer = LocalKeyring.open(path)
    writer.rotate("d")
    data_key = new_data_key()
    wrapped = writer.wrap("d", data_key, aad=AAD)
    assert reader.unwrap("d", wrapped, aad=AAD) == data_key


# -- secrets ----------------------------------------------------------------------------------------


def test_secrets_are_created_once_and_distinct_per_name(keyring: LocalKeyring) -> None:
    first = keyring.secret("pseudonym-master")
    assert len(first) == 32
    assert keyring.secret("pseudonym-master") == first
    assert keyring.secret("partition-key") != first


@pytest.mark.parametrize("name", ["", "bad\nname"])
def test_bad_names_are_refused(keyring: LocalKeyring, name: str) -> None:
    with pytest.raises(CryptoError):
        keyring.secret(name)
    with pytest.raises(CryptoError):
        keyring.ensure_domain(name)


# -- signing keys -----------------------------------------------------------------------------------


def test_no_signing_key_before_the_first(keyring: LocalKeyring) -> None:
    assert keyring.signing_keys() == []
    with pytest.raises(UnknownKey, match="rotate_signing_key"):
        keyring.current_signing_key()


def test_ensure_signing_key_creates_once(keyring: LocalKeyring) -> None:
    pair = keyring.ensure_signing_key(now=T0)
    assert keyring.ensure_signing_key(now=T0 + timedelta(days=1)) == pair
    [rec] = keyring.signing_keys()
    assert (rec.kid, rec.public, rec.not_before, rec.not_after, rec.state) == (
        pair.kid,
        pair.public,
        T0,
        None,
        "current",
    )


def test_signing_key_rotation_keeps_the_old_key_published_with_an_end(keyring: LocalKeyring) -> None:
    old = keyring.ensure_signing_key(now=T0)
    signature = sign(old.private, b"receipt")
    rotated_at = T0 + timedelta(days=90)
    new = keyring.rotate_signing_key(now=rotated_at)
    assert new.kid != old.kid
    assert keyring.current_signing_key() == new
    old_rec, new_rec = keyring.signing_keys()
    assert (old_rec.kid, old_rec.not_after, old_rec.state) == (old.kid, rotated_at, "retired")
    assert (new_rec.kid, new_rec.not_before, new_rec.not_after, new_rec.state) == (
        new.kid,
        rotated_at,
        None,
        "current",
    )
    verify(old_rec.public, b"receipt", signature)  # old receipts still verify
    assert old_rec.valid_at(T0 + timedelta(days=1))
    assert not old_rec.valid_at(rotated_at)


def test_signing_key_rotation_refuses_naive_or_backdated_times(keyring: LocalKeyring) -> None:
    with pytest.raises(CryptoError, match="timezone-aware"):
        keyring.rotate_signing_key(now=datetime(2026, 1, 1))  # naive on purpose
    keyring.ensure_signing_key(now=T0)
    with pytest.raises(CryptoError, match="valid only from"):
        keyring.rotate_signing_key(now=T0 - timedelta(days=1))


# -- concurrency ------------------------------------------------------------------------------------


def secret_names(path: Path) -> set[str]:
    """Names in the file itself: asking the keyring would create a lost secret and hide the loss."""
    return set(json.loads(path.read_text())["secrets"])


def test_threads_rotating_at_once_lose_nothing(keyring: LocalKeyring) -> None:
    keyring.ensure_domain("d")
    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            for i in range(5):
                keyring.rotate("d")
                keyring.secret(f"t{tag}-{i}")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keks = keyring.domain_keys("d")
    assert len(keks) == 1 + 6 * 5
    assert [k.state for k in keks].count("current") == 1
    assert secret_names(keyring.path) == {f"t{t}-{i}" for t in range(6) for i in range(5)}


CHILD = """
import sys, time
from pathlib import Path
from crypto.keyring import LocalKeyring

path, go, tag, rounds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
keyring = LocalKeyring.open(path)
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
for i in range(rounds):
    keyring.rotate("shared")
    keyring.secret(f"{tag}-{i}")
"""


def test_two_processes_rotating_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    keyring = LocalKeyring.open(path, create=True)
    first = keyring.ensure_domain("shared")
    go = tmp_path / "go"
    rounds = 15
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(go), tag, str(rounds)],
            env=env,
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    go.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    keks = keyring.domain_keys("shared")
    assert len(keks) == 1 + 2 * rounds
    assert keks[0].kid == first
    assert [k.state for k in keks].count("current") == 1
    assert keks[-1].state == "current"
    assert secret_names(path) == {f"{tag}-{i}" for tag in ("a", "b") for i in range(rounds)}
    assert LocalKeyring.open(path).domain_keys("shared") == keks
