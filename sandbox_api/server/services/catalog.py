"""Datasets and their versions: encrypted storage on upload, schema views, the policies' catalog."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.keyring import KeyProvider
from crypto.profile import INTERNATIONAL, PROFILES, CryptoProfile
from crypto.shredding import VersionKeys
from executors.base import PartRef, TableInput
from executors.storage import version_id_of, write_version
from sandbox_api.clock import Clock, as_utc, iso
from sandbox_api.errors import Conflict, InvalidUpload, NotFound
from sandbox_api.manifest import Manifest
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.ingest import UploadedFile, read_upload
from sandbox_api.server.services.principals import check_name
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import DatasetRow, DatasetVersionRow, DomainRow

ACTIVE = "active"
RETIRED = "retired"


@dataclass(frozen=True)
class VersionView:
    version_id: str
    state: str
    created_at: str
    created_by: str
    # [{name, unit, row_count, unique_units, columns: [{name, type, class, domain}]}]
    tables: list[dict[str, Any]]


@dataclass(frozen=True)
class DatasetView:
    domain: str
    name: str
    description: str
    created_at: str
    versions: list[VersionView] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.domain}/{self.name}"

    @property
    def current(self) -> VersionView | None:
        """The newest active version: what new jobs read."""
        return next((v for v in reversed(self.versions) if v.state == ACTIVE), None)


@dataclass(frozen=True)
class StoredVersion:
    view: VersionView
    created: bool


def version_view(row: DatasetVersionRow) -> VersionView:
    return VersionView(
        version_id=row.version_id,
        state=row.state,
        created_at=iso(row.created_at),
        created_by=row.created_by,
        tables=list(row.manifest),
    )


@dataclass(frozen=True)
class CatalogService:
    db: Database
    audit: AuditLog
    clock: Clock
    keys: KeyProvider
    version_keys: VersionKeys
    partition_key: bytes
    data_dir: Path
    n_parts: int
    # The deployment's algorithms: each version's data key is of the profile's cipher and its id is
    # the profile's hash of the canonical plaintext (crypto.profile).
    profile: CryptoProfile = PROFILES[INTERNATIONAL]

    # --- datasets --------------------------------------------------------------------------------
    def create_dataset(
        self, session: Session, *, actor: str, domain: str, name: str, description: str
    ) -> DatasetView:
        check_name("dataset", name)
        if session.get(DomainRow, domain) is None:
            raise NotFound(f"domain {domain!r} does not exist")
        if self._dataset_row(session, domain, name) is not None:
            raise Conflict(f"dataset {domain}/{name} already exists; upload a new version instead")
        row = DatasetRow(
            domain=domain, name=name, description=description, created_at=self.clock.now(), created_by=actor
        )
        session.add(row)
        session.flush()
        self.audit.append(
            session, event="dataset.created", actor=actor, details={"dataset": f"{domain}/{name}"}
        )
        return DatasetView(domain=domain, name=name, description=description, created_at=iso(row.created_at))

    def list_datasets(self, *, domain: str | None = None) -> list[DatasetView]:
        with self.db.read() as session:
            query = select(DatasetRow).order_by(DatasetRow.domain, DatasetRow.name)
            if domain is not None:
                query = query.where(DatasetRow.domain == domain)
            return [self._view(session, row) for row in session.execute(query).scalars()]

    def get_dataset(self, domain: str, name: str) -> DatasetView:
        with self.db.read() as session:
            row = self._dataset_row(session, domain, name)
            if row is None:
                raise NotFound(f"dataset {domain}/{name} does not exist")
            return self._view(session, row)

    # --- versions --------------------------------------------------------------------------------
    def add_version(
        self, *, actor: str, domain: str, name: str, manifest: Manifest, files: Sequence[UploadedFile]
    ) -> StoredVersion:
        """Parse, check, encrypt and register one version. Identical content gives the same version id
        and stores nothing new (the upload is idempotent)."""
        dataset = self.get_dataset(domain, name)
        tables = self._parse(manifest, files)
        version_id = version_id_of(tables, new_hash=self.profile.new_hash)
        described = self._describe(manifest, tables)
        existing = next((v for v in dataset.versions if v.version_id == version_id), None)
        if existing is not None:
            return self._unchanged(actor, dataset, existing, described)
        version_dir = self.data_dir / domain / name / version_id
        if version_dir.exists():
            # Parts without a registered version (a crash between writing and committing): their data
            # key was never stored, so they are unreadable garbage and safe to replace.
            shutil.rmtree(version_dir)
        data_key = self.profile.aead.new_key()
        key_aad = f"{domain}/{name}/{version_id}"
        layout = write_version(
            self.data_dir,
            domain=domain,
            dataset=name,
            version_id=version_id,
            tables=tables,
            units={t.name: t.unit for t in manifest.tables},
            data_key=data_key,
            partition_key=self.partition_key,
            n_parts=self.n_parts,
        )
        try:
            # Sealed once more under the version's own secret: shredding destroys it (crypto/shredding.py).
            wrapped = self.version_keys.seal(key_aad, self.keys.wrap(domain, data_key, aad=key_aad.encode()))
            with self.db.write() as session:
                dataset_row = self._dataset_row(session, domain, name)
                if dataset_row is None:
                    raise NotFound(f"dataset {domain}/{name} does not exist")
                row = DatasetVersionRow(
                    dataset_id=dataset_row.id,
                    version_id=version_id,
                    manifest=described,
                    layout={
                        table: [{"path": self._relative(p.path), "aad": p.aad.decode()} for p in parts]
                        for table, parts in layout.items()
                    },
                    wrapped_key=wrapped,
                    key_aad=key_aad,
                    state=ACTIVE,
                    created_at=self.clock.now(),
                    created_by=actor,
                )
                session.add(row)
                session.flush()
                self.audit.append(
                    session,
                    event="dataset.version.created",
                    actor=actor,
                    details={
                        "dataset": f"{domain}/{name}",
                        "version": version_id,
                        "rows": {t["name"]: t["row_count"] for t in described},
                    },
                )
                view = version_view(row)
        except BaseException:
            # Nothing registered: remove the parts so a failed upload leaves no trace.
            shutil.rmtree(version_dir, ignore_errors=True)
            raise
        return StoredVersion(view=view, created=True)

    def _unchanged(
        self, actor: str, dataset: DatasetView, existing: VersionView, described: list[dict[str, Any]]
    ) -> StoredVersion:
        # A version stored before ``unique_units`` was recorded lacks it: compare the declarations only.
        if [_declared(t) for t in existing.tables] != [_declared(t) for t in described]:
            raise Conflict(
                f"these files are already stored as version {existing.version_id} of {dataset.ref} with a "
                "different manifest; a version's declarations are immutable"
            )
        self.audit.record(
            event="dataset.version.unchanged",
            actor=actor,
            details={"dataset": dataset.ref, "version": existing.version_id},
        )
        return StoredVersion(view=existing, created=False)

    def retire_version(
        self, session: Session, *, actor: str, domain: str, name: str, version_id: str
    ) -> None:
        row = self._version_row(session, domain, name, version_id)
        if row.state == RETIRED:
            return
        row.state = RETIRED
        row.retired_at = self.clock.now()
        self.audit.append(
            session,
            event="dataset.version.retired",
            actor=actor,
            details={"dataset": f"{domain}/{name}", "version": version_id},
        )

    # --- what jobs and policies read --------------------------------------------------------------
    def current_versions(self) -> dict[str, VersionView]:
        """``{"domain/dataset": newest active version}`` for every dataset that has one."""
        return {d.ref: v for d in self.list_datasets() if (v := d.current) is not None}

    def table_input(self, *, dataset: str, version_id: str, table: str, sql_name: str) -> TableInput:
        domain, name = dataset.split("/", 1)
        with self.db.read() as session:
            row = self._version_row(session, domain, name, version_id)
            if row.state != ACTIVE:
                raise Conflict(f"version {version_id} of {dataset} was {row.state}; submit the job again")
            parts = row.layout.get(table)
            if parts is None:
                raise NotFound(f"table {table!r} is not part of {dataset} version {version_id}")
            # The unit lets a scale-out backend split a query over the unit-hash parts exactly.
            unit = next((str(t["unit"]) for t in row.manifest if t.get("name") == table), None)
            return TableInput(
                sql_name=sql_name,
                domain=domain,
                dataset=name,
                version_id=version_id,
                table=table,
                wrapped_key=self.version_keys.open(row.key_aad, row.wrapped_key),
                key_aad=row.key_aad.encode(),
                parts=tuple(
                    PartRef(path=str((self.data_dir / p["path"]).resolve()), aad=str(p["aad"]).encode())
                    for p in parts
                ),
                unit=unit,
            )

    # --- helpers ---------------------------------------------------------------------------------
    def _parse(self, manifest: Manifest, files: Sequence[UploadedFile]) -> dict[str, pa.Table]:
        by_field = {f.field: f for f in files}
        declared = [t.name for t in manifest.tables]
        missing = [n for n in declared if n not in by_field]
        extra = sorted(set(by_field) - set(declared))
        if missing or extra or len(by_field) != len(files):
            raise InvalidUpload(
                "send exactly one file part per manifest table, named after the table: "
                f"missing {missing}, unexpected {extra}"
            )
        return {t.name: read_upload(by_field[t.name], t) for t in manifest.tables}

    @staticmethod
    def _describe(manifest: Manifest, tables: Mapping[str, pa.Table]) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "unit": t.unit,
                "row_count": tables[t.name].num_rows,
                # One row per privacy unit: then a plain GROUP BY puts every unit in one group only,
                # which lets a remainder row add its rows' unit counts (services/release_facts.py).
                "unique_units": pc.count_distinct(tables[t.name].column(t.unit)).as_py()
                == tables[t.name].num_rows,
                "columns": [c.model_dump(mode="json", by_alias=True) for c in t.columns],
                **({"one_row_per_unit": True} if t.one_row_per_unit else {}),
                # Stored per table, since a scope grants tables; absent when undeclared (default level).
                **({"level": manifest.level} if manifest.level is not None else {}),
            }
            for t in sorted(manifest.tables, key=lambda t: t.name)
        ]

    def _relative(self, path: str) -> str:
        return str(Path(path).resolve().relative_to(self.data_dir.resolve()))

    @staticmethod
    def _dataset_row(session: Session, domain: str, name: str) -> DatasetRow | None:
        return session.execute(
            select(DatasetRow).where(DatasetRow.domain == domain, DatasetRow.name == name)
        ).scalar_one_or_none()

    def _version_row(self, session: Session, domain: str, name: str, version_id: str) -> DatasetVersionRow:
        dataset = self._dataset_row(session, domain, name)
        if dataset is None:
            raise NotFound(f"dataset {domain}/{name} does not exist")
        row = session.execute(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset_id == dataset.id, DatasetVersionRow.version_id == version_id
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"dataset {domain}/{name} has no version {version_id}")
        return row

    @staticmethod
    def _view(session: Session, row: DatasetRow) -> DatasetView:
        versions = session.execute(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset_id == row.id)
            .order_by(DatasetVersionRow.created_at, DatasetVersionRow.id)
        ).scalars()
        return DatasetView(
            domain=row.domain,
            name=row.name,
            description=row.description,
            created_at=iso(as_utc(row.created_at)),
            versions=[version_view(v) for v in versions],
        )


def _declared(table: Mapping[str, Any]) -> dict[str, Any]:
    """A stored table description without the facts measured at upload (``unique_units``)."""
    return {k: v for k, v in table.items() if k != "unique_units"}
