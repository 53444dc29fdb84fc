"""The policies' view of the catalog, built from the stored versions (schemas only, never rows)."""

from __future__ import annotations

from collections.abc import Mapping

from policies.catalog import Catalog, ColumnSchema, DatasetSchema, TableSchema, ValueDomain
from sandbox_api.services.catalog import VersionView


def build_catalog(versions: Mapping[str, VersionView]) -> Catalog:
    """``versions`` maps ``"domain/dataset"`` to the version new jobs read."""
    datasets = []
    for ref, version in sorted(versions.items()):
        domain, name = ref.split("/", 1)
        tables = tuple(
            TableSchema(
                name=table["name"],
                unit=table["unit"],
                row_count=table.get("row_count"),
                columns=tuple(
                    ColumnSchema(
                        name=column["name"],
                        type=column["type"],
                        cls=column["class"],
                        domain=None if column.get("domain") is None else ValueDomain(**column["domain"]),
                    )
                    for column in table["columns"]
                ),
            )
            for table in version.tables
        )
        datasets.append(DatasetSchema(domain=domain, name=name, version_id=version.version_id, tables=tables))
    return Catalog(datasets=tuple(datasets))
