"""Helpers for the executors tests: real encrypted dataset versions written with a real keyring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from crypto.envelope import new_data_key
from crypto.keyring import LocalKeyring
from executors.base import TableInput
from executors.storage import version_id_of, write_version


@dataclass(frozen=True)
class StoredVersion:
    """One dataset version written to disk, with what a job needs to read it."""

    version_id: str
    data_key: bytes
    inputs: Mapping[str, TableInput]  # by table name; sql_name is the table name


def store_version(
    root: Path,
    keyring: LocalKeyring,
    tables: Mapping[str, pa.Table],
    *,
    units: Mapping[str, str],
    n_parts: int,
    domain: str = "health-bureau",
    dataset: str = "visits",
) -> StoredVersion:
    keyring.ensure_domain(domain)
    version_id = version_id_of(tables)
    data_key = new_data_key()
    layout = write_version(
        root,
        domain=domain,
        dataset=dataset,
        version_id=version_id,
        tables=tables,
        units=units,
        data_key=data_key,
        partition_key=keyring.secret("partition"),
        n_parts=n_parts,
    )
    key_aad = f"{domain}/{dataset}/{version_id}".encode()
    wrapped = keyring.wrap(domain, data_key, aad=key_aad)
    inputs = {
        name: TableInput(
            sql_name=name,
            domain=domain,
            dataset=dataset,
            version_id=version_id,
            table=name,
            wrapped_key=wrapped,
            key_aad=key_aad,
            parts=layout[name],
            column_types=tuple((f.name, _duckdb_type(f.type)) for f in tables[name].schema),
        )
        for name in tables
    }
    return StoredVersion(version_id=version_id, data_key=data_key, inputs=inputs)


def _duckdb_type(arrow: pa.DataType) -> str:
    """The manifest type a column of this Arrow type is declared with (what the catalog passes on)."""
    if pa.types.is_floating(arrow):
        return "DOUBLE"
    if pa.types.is_integer(arrow):
        return "BIGINT"
    return "BOOLEAN" if pa.types.is_boolean(arrow) else "VARCHAR"


def visits_table(n: int = 2_000) -> pa.Table:
    """Synthetic visits: persons with several visits each, skewed districts, a secret-looking name."""
    return pa.table(
        {
            "person_id": [i % (n // 4) for i in range(n)],
            "district": [f"district-{(i * 7) % 5 if i % 11 else 0}" for i in range(n)],
            "cost": [float((i * 37) % 1000) for i in range(n)],
            "name": [f"Secret-Name-{i}" for i in range(n)],
        }
    )
