"""The manifest a steward sends with an upload: tables, their privacy unit and declared columns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.catalog import ValueDomain
from policies.levels import LEVEL_NAME

ColumnType = Literal["VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "DATE", "BOOLEAN", "TIMESTAMP"]
ColumnClassName = Literal["public", "internal", "sensitive", "identifying"]
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class ColumnDecl(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=IDENTIFIER)
    type: ColumnType
    cls: ColumnClassName = Field(alias="class")
    domain: ValueDomain | None = Field(
        default=None,
        description=(
            "optional declared value domain (categories or range): every uploaded value must lie in it; "
            "mock data is drawn from it"
        ),
    )
    nullable: bool = Field(
        default=True,
        description="false: every row must hold a value in this column (an empty CSV field or a Parquet "
        "null is refused at upload); the unit column never may be empty",
    )


class TableDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=IDENTIFIER)
    unit: str = Field(description="the privacy-unit column, e.g. person_id")
    columns: list[ColumnDecl] = Field(min_length=1)
    one_row_per_unit: bool = Field(
        default=False,
        description="the steward's promise that no unit has two rows in this table (a register of "
        "people, say): an upload that breaks it is refused. Differential privacy then needs no per-unit "
        "sample of the table (whether declared or not, the fact is measured on every upload)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TableDecl:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"table {self.name}: duplicate column names {duplicates}")
        if self.unit not in names:
            raise ValueError(f"table {self.name}: the unit column {self.unit!r} is not among its columns")
        if any(n.startswith("_sbx") for n in names):
            raise ValueError(f"table {self.name}: column names starting with '_sbx' are reserved")
        return self


class Manifest(BaseModel):
    """``{"tables": [{"name", "unit", "columns": [{"name", "type", "class", "domain"?}]}], "level"?}``."""

    model_config = ConfigDict(extra="forbid")

    tables: list[TableDecl] = Field(min_length=1, max_length=32)
    level: str | None = Field(
        default=None,
        pattern=LEVEL_NAME,
        description="the version's classification level (e.g. L4), one the deployment defines; it sets "
        "the floors no scope on this data can go below. Unset: the deployment's default level",
    )

    @model_validator(mode="after")
    def _unique_tables(self) -> Manifest:
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError("table names in the manifest must be unique")
        return self

    def to_json_list(self) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json", by_alias=True) for t in self.tables]
