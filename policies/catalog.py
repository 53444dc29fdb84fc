"""The catalog the queries are checked against: domains → datasets → tables → typed columns.

The service builds it from registered dataset versions. Names follow DuckDB: case-insensitive.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.errors import UnknownReference

#: DuckDB type names a catalog column may have (aliases normalised by ``ColumnSchema``).
COLUMN_TYPES = frozenset(
    {
        "VARCHAR",
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "HUGEINT",
        "DOUBLE",
        "FLOAT",
        "DECIMAL",
        "DATE",
        "TIMESTAMP",
        "BOOLEAN",
    }
)
_TYPE_ALIASES = {
    "TEXT": "VARCHAR",
    "STRING": "VARCHAR",
    "INT": "INTEGER",
    "INT64": "BIGINT",
    "INT32": "INTEGER",
    "REAL": "FLOAT",
    "BOOL": "BOOLEAN",
    "DATETIME": "TIMESTAMP",
    "FLOAT64": "DOUBLE",
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIMESTAMP_US": "TIMESTAMP",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnClass(StrEnum):
    """Sensitivity class a steward declares for a column (docs/design.md §3)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    SENSITIVE = "sensitive"
    IDENTIFYING = "identifying"


class ValueDomain(_Frozen):
    """Declared values of a column, used to generate mock data (never derived from real rows)."""

    categories: tuple[str, ...] | None = None
    low: float | date | None = None
    high: float | date | None = None


class ColumnSchema(_Frozen):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    type: str
    cls: ColumnClass = ColumnClass.INTERNAL
    domain: ValueDomain | None = None

    @model_validator(mode="after")
    def _known_type(self) -> Self:
        base = self.type.upper().split("(")[0].strip()
        base = _TYPE_ALIASES.get(base, base)
        if base not in COLUMN_TYPES:
            raise ValueError(f"column type {self.type!r} is not one of {', '.join(sorted(COLUMN_TYPES))}")
        object.__setattr__(self, "type", base if base != "DECIMAL" else self.type.upper())
        return self

    @property
    def family(self) -> str:
        """Coarse type family used to refuse implicit casts: str, num, date, bool."""
        if self.type == "VARCHAR":
            return "str"
        if self.type in {"DATE", "TIMESTAMP"}:
            return "date"
        if self.type == "BOOLEAN":
            return "bool"
        return "num"


class TableSchema(_Frozen):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    unit: str
    columns: tuple[ColumnSchema, ...]
    row_count: int | None = None
    #: The steward declared that every unit has at most one row in this table (a register), and the
    #: upload was refused otherwise. A public promise about the data, like its schema: differential
    #: privacy counts one row per unit here, and the per-unit sample is left out.
    one_row_per_unit: bool = False
    #: Measured when the version was stored: no unit has two rows (declared or not). Only lets the
    #: per-unit sample be left out (it would keep every row); never lowers the noise, which must not
    #: depend on a fact measured on the data.
    unique_units: bool = False
    #: The classification level the steward declared for the version (None: the deployment's default).
    #: It decides the floors no scope on this table may go below (policies/levels.py).
    level: str | None = None

    @model_validator(mode="after")
    def _unit_is_a_column(self) -> Self:
        names = [c.name.lower() for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name!r} has duplicate column names (case-insensitive)")
        if self.unit.lower() not in names:
            raise ValueError(f"unit {self.unit!r} is not a column of table {self.name!r}")
        return self

    def column(self, name: str) -> ColumnSchema | None:
        """The column named ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


def domain_of(dataset: str) -> str:
    """The domain that owns ``dataset``, a key ``"domain/name"`` (:attr:`DatasetSchema.key`) or a table
    reference under it (``"domain/name/table"``).

    >>> domain_of("health-bureau/visits"), domain_of("health-bureau/visits/visits")
    ('health-bureau', 'health-bureau')
    """
    return dataset.split("/", 1)[0]


class DatasetSchema(_Frozen):
    domain: str
    name: str
    version_id: str = ""
    tables: tuple[TableSchema, ...]

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.name}"


class Catalog(_Frozen):
    """Every dataset a scope may refer to.

    >>> cat = Catalog(datasets=(DatasetSchema(domain="hb", name="citizens", tables=(TableSchema(
    ...     name="citizens", unit="person_id", columns=(ColumnSchema(name="person_id", type="BIGINT"),)),)),))
    >>> cat.table("hb/citizens").unit
    'person_id'
    """

    datasets: tuple[DatasetSchema, ...] = ()

    @property
    def domains(self) -> dict[str, tuple[DatasetSchema, ...]]:
        """Datasets grouped by their owning domain."""
        out: dict[str, list[DatasetSchema]] = {}
        for dataset in self.datasets:
            out.setdefault(dataset.domain, []).append(dataset)
        return {domain: tuple(items) for domain, items in out.items()}

    def dataset(self, key: str) -> DatasetSchema:
        """The dataset ``"domain/dataset"``; ``UnknownReference`` if absent."""
        for dataset in self.datasets:
            if dataset.key == key:
                return dataset
        raise UnknownReference(f"dataset {key!r} is not in the catalog")

    def table(self, ref: str) -> TableSchema:
        """``"domain/dataset"`` (its only table) or ``"domain/dataset/table"``."""
        parts = ref.split("/")
        if len(parts) not in (2, 3):
            raise UnknownReference(f"{ref!r} is not 'domain/dataset' or 'domain/dataset/table'")
        dataset = self.dataset("/".join(parts[:2]))
        if len(parts) == 2:
            if len(dataset.tables) != 1:
                names = ", ".join(t.name for t in dataset.tables)
                raise UnknownReference(f"dataset {dataset.key!r} has several tables ({names}): name one")
            return dataset.tables[0]
        for table in dataset.tables:
            if table.name.lower() == parts[2].lower():
                return table
        raise UnknownReference(f"table {parts[2]!r} is not in dataset {dataset.key!r}")
