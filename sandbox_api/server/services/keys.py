"""Key lifecycle: publish and rotate signing keys; rotate domain keys; crypto-shred dataset versions.

Crypto-shredding (docs/design.md §9) destroys a version's only data key. The stored key is sealed under
a secret of the version's own that lives only in the key provider (``crypto/shredding.py``); shredding
destroys that secret, so every copy of the stored key that a store keeps where no overwrite reaches it
(PostgreSQL's dead tuples and write-ahead log, backups, replicas) is noise. The stored value is also
overwritten; on SQLite the connections run with ``PRAGMA secure_delete`` so the old bytes are zeroed in
the database pages, and the write-ahead log is checkpointed and truncated. The encrypted parts stay on
disk: without the data key they are noise. The version is marked ``shredded`` and who, when and why is
stored and audited, so a replay can say so.
A domain's KEK rotation re-wraps every data key of the domain under the new KEK; data is untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.key_provider import DeploymentKeys
from crypto.profile import INTERNATIONAL, PROFILES, CryptoProfile
from crypto.shredding import VersionKeys
from crypto.signing import SigningKeyRecord
from executors.base import ledger_key_aad
from sandbox_api.bundle_format import KEYS_FORMAT
from sandbox_api.clock import Clock, as_utc, iso
from sandbox_api.errors import NotFound
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import DatasetRow, DatasetVersionRow, DomainRow, ShredRow

SHREDDED = "shredded"
_CHECKPOINT_ATTEMPTS = 20


@dataclass(frozen=True)
class Shredded:
    dataset: str
    version_id: str
    shredded_at: str
    shredded_by: str
    reason: str


def shred_view(dataset: str, version_id: str, shred: ShredRow) -> Shredded:
    return Shredded(
        dataset=dataset,
        version_id=version_id,
        shredded_at=iso(as_utc(shred.shredded_at)),
        shredded_by=shred.shredded_by,
        reason=shred.reason,
    )


def keys_document(records: list[SigningKeyRecord]) -> dict[str, object]:
    """The published signing keys, in the form offline verification reads (``--public-key``)."""
    return {"format": KEYS_FORMAT, "keys": [r.to_dict() for r in records]}


@dataclass(frozen=True)
class KeyLifecycle:
    db: Database
    audit: AuditLog
    clock: Clock
    keys: DeploymentKeys
    # The deployment's algorithms: the cipher of the crypto-shredding layer it re-seals on rotation.
    profile: CryptoProfile = PROFILES[INTERNATIONAL]

    # --- signing keys ----------------------------------------------------------------------------
    def signing_keys(self) -> list[SigningKeyRecord]:
        return self.keys.signing_keys()

    def rotate_signing_key(self, *, actor: str) -> tuple[SigningKeyRecord, str | None]:
        """A new current signing key; the old one ends now and stays published for older receipts."""
        before = self.keys.signing_keys()
        retired = before[-1].kid if before else None
        pair = self.keys.rotate_signing_key(now=self.clock.now())
        record = next(k for k in self.keys.signing_keys() if k.kid == pair.kid)
        self.audit.record(
            event="signing_key.rotated",
            actor=actor,
            details={"kid": record.kid, "not_before": iso(record.not_before), "retired": retired},
        )
        return record, retired

    # --- domain keys ------------------------------------------------------------------------------
    def rotate_domain_key(self, session: Session, *, actor: str, name: str) -> tuple[str, int]:
        """New current KEK for the domain; every data key of the domain is re-wrapped (data untouched)."""
        domain = session.get(DomainRow, name)
        if domain is None:
            raise NotFound(f"domain {name!r} does not exist")
        kek_id = self.keys.rotate(name)
        versions = session.execute(
            # A crypto-shredded version has no data key left to re-wrap.
            select(DatasetVersionRow)
            .join(DatasetRow)
            .where(DatasetRow.domain == name, DatasetVersionRow.state != "shredded")
        ).scalars()
        count = 0
        version_keys = VersionKeys(self.keys, key_of=self.profile.aead_key)
        for version in versions:
            wrapped = version_keys.open(version.key_aad, version.wrapped_key)
            rewrapped = self.keys.rewrap(name, wrapped, aad=version.key_aad.encode())
            # A version stored before the version layer existed gains it here.
            version.wrapped_key = version_keys.seal(version.key_aad, rewrapped)
            count += 1
        datasets = session.execute(
            select(DatasetRow).where(DatasetRow.domain == name, DatasetRow.ledger_key.is_not(None))
        ).scalars()
        for dataset in datasets:
            # The ledger key outlives versions and rotations: the same key, under the new KEK.
            assert dataset.ledger_key is not None
            aad = ledger_key_aad(f"{name}/{dataset.name}")
            dataset.ledger_key = self.keys.rewrap(name, dataset.ledger_key, aad=aad)
        domain.kek_id = kek_id
        self.audit.append(
            session,
            event="key.rotated",
            actor=actor,
            details={"domain": name, "kek_id": kek_id, "rewrapped_versions": count},
        )
        return kek_id, count

    # --- crypto-shredding --------------------------------------------------------------------------
    def shred(self, *, actor: str, domain: str, name: str, version_id: str, reason: str) -> Shredded:
        """Destroy the version's data key (idempotent: a second call reports the first shredding)."""
        dataset = f"{domain}/{name}"
        with self.db.write() as session:
            row = self._version_row(session, domain, name, version_id)
            existing = session.get(ShredRow, row.id)
            if existing is not None:
                return shred_view(dataset, version_id, existing)
            now = self.clock.now()
            row.wrapped_key = b""
            row.state = SHREDDED
            row.retired_at = row.retired_at or now
            shred = ShredRow(version_row_id=row.id, shredded_at=now, shredded_by=actor, reason=reason)
            session.add(shred)
            session.flush()
            self.audit.append(
                session,
                event="dataset.version.shredded",
                actor=actor,
                details={"dataset": dataset, "version": version_id, "reason": reason},
            )
            view = shred_view(dataset, version_id, shred)
            # Last, so that a failure before it changes nothing; a failure after it (before the
            # commit) leaves the key destroyed and the shredding to be asked again, which completes it.
            VersionKeys(self.keys).destroy(row.key_aad)
        self._purge_wal()
        return view

    def shredded(self, session: Session, *, dataset: str, version_id: str) -> Shredded | None:
        """Who shredded ``version_id`` of ``dataset`` and when; None while it is not shredded."""
        domain, name = dataset.split("/", 1)
        row = self._version_row(session, domain, name, version_id)
        shred = session.get(ShredRow, row.id)
        return None if shred is None else shred_view(dataset, version_id, shred)

    def _purge_wal(self) -> None:
        """Move every committed page into the database file and truncate the WAL (SQLite only).

        A checkpoint cannot pass a reader that still needs older frames; readers are short, so retry.
        """
        if not self.db.is_sqlite:
            return
        for _ in range(_CHECKPOINT_ATTEMPTS):
            # The driver connection runs in autocommit (store/db.py), so no transaction of ours holds
            # the WAL open while it is checkpointed.
            connection = self.db.engine.raw_connection()
            try:
                cursor = connection.cursor()
                busy, _log, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                cursor.close()
            finally:
                connection.close()
            if not busy:
                return
            time.sleep(0.05)

    @staticmethod
    def _version_row(session: Session, domain: str, name: str, version_id: str) -> DatasetVersionRow:
        row = session.execute(
            select(DatasetVersionRow)
            .join(DatasetRow)
            .where(
                DatasetRow.domain == domain,
                DatasetRow.name == name,
                DatasetVersionRow.version_id == version_id,
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"dataset {domain}/{name} has no version {version_id}")
        return row
