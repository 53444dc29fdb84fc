"""Datasets and their versions: encrypted storage on upload, schema views, the policies' catalog.

A version is uploaded as a draft with its validation report and becomes live (``active``) only when a
second steward of its domain publishes it; the review rules are in services/catalog_review.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crypto.keyring import KeyProvider
from crypto.profile import INTERNATIONAL, PROFILES, CryptoProfile
from crypto.shredding import VersionKeys
from executors.base import PartRef, TableInput, ledger_key_aad
from executors.storage import version_id_of, write_version
from sandbox_api.clock import Clock, as_utc, iso
from sandbox_api.errors import Conflict, InvalidUpload, NotFound
from sandbox_api.manifest import ColumnDecl, Manifest
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.catalog_review import (
    ACTIVE,
    DRAFT,
    RETIRED,
    RETURNED,
    publish_refusal,
    return_refusal,
)
from sandbox_api.server.services.ingest import UploadedFile, read_upload
from sandbox_api.server.services.principals import check_name
from sandbox_api.server.services.validation_report import validation_report
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import DatasetRow, DatasetVersionRow, DomainRow


@dataclass(frozen=True)
class VersionView:
    version_id: str
    state: str
    created_at: str
    created_by: str
    # [{name, unit, row_count, unique_units, columns: [{name, type, class, domain}]}]
    tables: list[dict[str, Any]]
    # The checks run against the manifest at upload (services/validation_report.py); None before reports.
    validation: dict[str, Any] | None = None
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    review_reason: str = ""
    published_at: str | None = None

    @property
    def published(self) -> bool:
        return self.state == ACTIVE

    def for_operators(self) -> VersionView:
        """The version as operators see it: no validation report and no row counts. An exact count of
        a real table is a total of everyone that no released-cohort ledger recorded: one job counting
        everyone but one person's cell, subtracted from it, would say whether that cell holds her."""
        return replace(self, validation=None, tables=[{**t, "row_count": None} for t in self.tables])


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
        """The most recently published active version: what new jobs read (drafts never are)."""
        live = [(v.published_at or v.created_at, i, v) for i, v in enumerate(self.versions) if v.published]
        return max(live, key=lambda t: (t[0], t[1]))[2] if live else None

    def published_only(self) -> DatasetView:
        """The dataset as operators see it: no draft and no returned version, each without its report
        and row counts (``VersionView.for_operators``)."""
        return replace(
            self,
            versions=[v.for_operators() for v in self.versions if v.state not in {DRAFT, RETURNED}],
        )


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
        validation=row.validation,
        reviewed_by=row.reviewed_by,
        reviewed_at=None if row.reviewed_at is None else iso(as_utc(row.reviewed_at)),
        review_reason=row.review_reason or "",
        published_at=None if row.published_at is None else iso(as_utc(row.published_at)),
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
    # settings.catalog_review_required: False publishes every upload at once, without review.
    review_required: bool = True

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
            domain=domain,
            name=name,
            description=description,
            created_at=self.clock.now(),
            created_by=actor,
            ledger_key=self._new_ledger_key(domain, name),
        )
        session.add(row)
        session.flush()
        self.audit.append(
            session, event="dataset.created", actor=actor, details={"dataset": f"{domain}/{name}"}
        )
        return DatasetView(domain=domain, name=name, description=description, created_at=iso(row.created_at))

    def list_datasets(self, *, domain: str | None = None) -> list[DatasetView]:
        with self.db.read() as session:
            # Every dataset with its versions in one query (every submission and every run reads the
            # catalog): a dataset without versions comes back once, with None for its version.
            query = (
                select(DatasetRow, DatasetVersionRow)
                .outerjoin(DatasetVersionRow, DatasetVersionRow.dataset_id == DatasetRow.id)
                .order_by(
                    DatasetRow.domain,
                    DatasetRow.name,
                    DatasetRow.id,
                    DatasetVersionRow.created_at,
                    DatasetVersionRow.id,
                )
            )
            if domain is not None:
                query = query.where(DatasetRow.domain == domain)
            datasets: dict[int, DatasetRow] = {}
            versions: dict[int, list[DatasetVersionRow]] = {}
            for dataset, version in session.execute(query):
                datasets.setdefault(dataset.id, dataset)
                found = versions.setdefault(dataset.id, [])
                if version is not None:
                    found.append(version)
            return [_dataset_view(row, versions[key]) for key, row in datasets.items()]

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
        """Parse, check, encrypt and register one version: a draft with its validation report, or live at
        once where the deployment does not require review. Identical content gives the same version id
        and stores nothing new (the upload is idempotent)."""
        dataset = self.get_dataset(domain, name)
        tables = self._parse(manifest, files)
        version_id = version_id_of(tables, new_hash=self.profile.new_hash)
        described = self._describe(manifest, tables)
        report = validation_report(manifest, tables)
        if not report["passed"]:
            # Upload refuses each broken declaration with its own message; this only guards the report.
            failed = [c for t in report["tables"] for c in t["checks"] if not c["passed"]]
            raise InvalidUpload(
                "the files do not match the manifest: see findings",
                findings=[{"rule": c["check"], "message": f"{c['column']}: {c['detail']}"} for c in failed],
            )
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
                    state=DRAFT if self.review_required else ACTIVE,
                    created_at=self.clock.now(),
                    created_by=actor,
                    validation=report,
                    published_at=None if self.review_required else self.clock.now(),
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
                        "state": row.state,
                        "validation": "passed",
                    },
                )
                if not self.review_required:
                    self.audit.append(
                        session,
                        event="dataset.version.published",
                        actor=actor,
                        details={
                            "dataset": f"{domain}/{name}",
                            "version": version_id,
                            "review": "not required by this deployment (catalog_review_required=false)",
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

    # --- review ----------------------------------------------------------------------------------
    def publish_version(
        self, session: Session, *, actor: str, domain: str, name: str, version_id: str, reason: str
    ) -> VersionView:
        """A second steward publishes a draft: it becomes the current version that jobs read."""
        row = self._version_row(session, domain, name, version_id)
        if row.state == ACTIVE and row.reviewed_by == actor:
            return version_view(row)  # a repeated publication is harmless
        refusal = publish_refusal(
            state=row.state, uploader=row.created_by, reviewer=actor, validation=row.validation
        )
        if refusal is not None:
            raise refusal
        self._review(session, row, f"{domain}/{name}", actor=actor, to=ACTIVE, reason=reason)
        return version_view(row)

    def return_version(
        self, session: Session, *, actor: str, domain: str, name: str, version_id: str, reason: str
    ) -> VersionView:
        """A second steward sends a draft back for correction, with reasons the uploader can act on."""
        row = self._version_row(session, domain, name, version_id)
        if row.state == RETURNED and row.reviewed_by == actor and row.review_reason == reason:
            return version_view(row)
        refusal = return_refusal(state=row.state, uploader=row.created_by, reviewer=actor, reason=reason)
        if refusal is not None:
            raise refusal
        self._review(session, row, f"{domain}/{name}", actor=actor, to=RETURNED, reason=reason)
        return version_view(row)

    def _review(
        self, session: Session, row: DatasetVersionRow, dataset: str, *, actor: str, to: str, reason: str
    ) -> None:
        """Record a second steward's decision on a draft (published or returned) and its audit event."""
        now = self.clock.now()
        row.state, row.reviewed_by, row.reviewed_at, row.review_reason = to, actor, now, reason
        if to == ACTIVE:
            row.published_at = now
        self.audit.append(
            session,
            event="dataset.version.published" if to == ACTIVE else "dataset.version.returned",
            actor=actor,
            details={
                "dataset": dataset,
                "version": row.version_id,
                "uploaded_by": row.created_by,
                "reason": reason,
            },
        )

    def version(self, domain: str, name: str, version_id: str) -> VersionView:
        with self.db.read() as session:
            return version_view(self._version_row(session, domain, name, version_id))

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
            declared: dict[str, Any] = next((t for t in row.manifest if t.get("name") == table), {})
            # The declared types let a split job merge its float sums exactly (the data has them too).
            column_types = tuple((str(c["name"]), str(c["type"])) for c in declared.get("columns", ()))
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
                column_types=column_types,
            )

    def ledger_key(self, dataset: str) -> bytes:
        """The dataset's ledger key, wrapped under its domain's KEK (``ledger_key_aad``): the root of its
        domain's blinding keys of every scope lineage for the released-cohort ledger's cross-domain
        tokens. It outlives versions, so that the ledger compares cells over two versions of the
        dataset. Made here, once, for a dataset created before such keys existed: two gateways racing
        both read back the one that was stored first."""
        domain, name = dataset.split("/", 1)
        with self.db.read() as session:
            row = self._dataset_row(session, domain, name)
            if row is None:
                raise NotFound(f"dataset {dataset} does not exist")
            if row.ledger_key is not None:
                return row.ledger_key
        made = self._new_ledger_key(domain, name)
        with self.db.write() as session:
            session.execute(
                update(DatasetRow)
                .where(DatasetRow.domain == domain, DatasetRow.name == name, DatasetRow.ledger_key.is_(None))
                .values(ledger_key=made)
            )
            stored = session.execute(
                select(DatasetRow.ledger_key).where(DatasetRow.domain == domain, DatasetRow.name == name)
            ).scalar_one()
        assert stored is not None
        return stored

    def _new_ledger_key(self, domain: str, name: str) -> bytes:
        return self.keys.wrap(domain, self.profile.aead.new_key(), aad=ledger_key_aad(f"{domain}/{name}"))

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
                "columns": [_column(c) for c in t.columns],
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
        # One query on the way that matters (every job reads its tables' versions); which of the two
        # is missing is looked up only when one is.
        row = session.execute(
            select(DatasetVersionRow)
            .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
            .where(
                DatasetRow.domain == domain,
                DatasetRow.name == name,
                DatasetVersionRow.version_id == version_id,
            )
        ).scalar_one_or_none()
        if row is not None:
            return row
        if self._dataset_row(session, domain, name) is None:
            raise NotFound(f"dataset {domain}/{name} does not exist")
        raise NotFound(f"dataset {domain}/{name} has no version {version_id}")

    @staticmethod
    def _view(session: Session, row: DatasetRow) -> DatasetView:
        versions = session.execute(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset_id == row.id)
            .order_by(DatasetVersionRow.created_at, DatasetVersionRow.id)
        ).scalars()
        return _dataset_view(row, versions)


def _dataset_view(row: DatasetRow, versions: Iterable[DatasetVersionRow]) -> DatasetView:
    return DatasetView(
        domain=row.domain,
        name=row.name,
        description=row.description,
        created_at=iso(as_utc(row.created_at)),
        versions=[version_view(v) for v in versions],
    )


def _column(column: ColumnDecl) -> dict[str, Any]:
    """A declared column as stored; ``nullable`` only where declared false, so that versions stored
    before the declaration existed compare equal to a re-upload of the same manifest."""
    stored = column.model_dump(mode="json", by_alias=True, exclude={"nullable"})
    return stored if column.nullable else {**stored, "nullable": False}


def _declared(table: Mapping[str, Any]) -> dict[str, Any]:
    """A stored table description without the facts measured at upload (``unique_units``)."""
    return {k: v for k, v in table.items() if k != "unique_units"}
