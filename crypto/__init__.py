"""Cryptography for Data Sandbox: envelope encryption, keys, pseudonyms, signatures, audit chain.

This is the only package that imports ``cryptography``. See ``docs/internals.md`` for the contract.
"""

from crypto.audit import (
    GENESIS,
    AuditEntry,
    ChainReport,
    Checkpoint,
    chain,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from crypto.envelope import DATA_KEY_BYTES, new_data_key, seal, unseal
from crypto.errors import (
    CryptoError,
    IntegrityError,
    KeyDestroyed,
    KeyNotValid,
    KeyringError,
    NotCanonical,
    UnknownKey,
)
from crypto.hashing import canonical_json, sha256_hex
from crypto.keyring import KekRecord, KeyProvider, LocalKeyring, kek_id_of
from crypto.pseudonym import derive_key, keyed_hash, keyed_hasher, partition_index, partitioner
from crypto.signing import (
    SigningKeyPair,
    SigningKeyRecord,
    generate_signing_key,
    key_id,
    public_key_of,
    sign,
    verify,
)

__all__ = [
    "DATA_KEY_BYTES",
    "GENESIS",
    "AuditEntry",
    "ChainReport",
    "Checkpoint",
    "CryptoError",
    "IntegrityError",
    "KekRecord",
    "KeyDestroyed",
    "KeyNotValid",
    "KeyProvider",
    "KeyringError",
    "LocalKeyring",
    "NotCanonical",
    "SigningKeyPair",
    "SigningKeyRecord",
    "UnknownKey",
    "canonical_json",
    "chain",
    "derive_key",
    "generate_signing_key",
    "kek_id_of",
    "key_id",
    "keyed_hash",
    "keyed_hasher",
    "new_data_key",
    "partition_index",
    "partitioner",
    "public_key_of",
    "seal",
    "sha256_hex",
    "sign",
    "sign_checkpoint",
    "unseal",
    "verify",
    "verify_chain",
    "verify_checkpoint",
]
