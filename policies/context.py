"""What a query is checked against: the scope's rules joined with the catalog's tables and types.

``compile_context`` is the one place where scope and catalog meet. Its result is immutable and depends
only on the scope and the catalog, so a caller may build it once per (scope version, catalog) and pass it
to every ``prepare_with``/``check_with`` call. ``check_scope`` reports every way a scope does not fit its
catalog (the service calls it when a scope is created).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.schema import MappingSchema

from policies.analysis.syntax import syntax_findings
from policies.catalog import Catalog, ColumnClass, ColumnSchema, TableSchema
from policies.errors import UnknownReference
from policies.findings import Finding
from policies.model import ColumnRule, Disclosure, GeneralizeMask, KeywordMask, Scope, Use

DIALECT = "duckdb"


@dataclass(frozen=True)
class TableRef:
    """A table a prepared query reads: the executor loads ``dataset``'s ``table`` as ``sql_name``."""

    dataset: str
    table: str
    sql_name: str


@dataclass(frozen=True)
class ColumnPolicy:
    name: str
    type: str
    family: str
    rule: ColumnRule
    #: The steward's class; ``public`` columns may link tables in a join (public dimensions).
    cls: ColumnClass | None = None

    @property
    def use(self) -> Use:
        return self.rule.use


@dataclass(frozen=True)
class TablePolicy:
    ref: TableRef
    unit: str
    columns: Mapping[str, ColumnPolicy]
    row_filter: str | None
    #: ``row_filter`` parsed once; the rewrite inserts copies of it, never the tree itself.
    row_filter_condition: exp.Expr | None = None
    #: The catalog's ``one_row_per_unit`` (declared): DP counts one row per unit in this table.
    one_row_per_unit: bool = False
    #: Declared or measured (``unique_units``): the DP bounding passes need not sample this table.
    unsampled: bool = False

    def column(self, name: str) -> ColumnPolicy | None:
        return self.columns.get(name.lower())


@dataclass(frozen=True)
class PolicyContext:
    """Read-only view of one scope over one catalog, reusable across calls.

    ``scope_findings`` are the ways the scope does not fit the catalog; every query checked against
    this context reports them (and is refused when there are any).
    """

    tables: Mapping[str, TablePolicy]
    disclosure: Disclosure
    scope_name: str
    scope_version: str
    schema: MappingSchema  # read by qualify only; never mutated after construction
    dialect: str = DIALECT
    scope_findings: tuple[Finding, ...] = ()
    #: ``dialect`` as a sqlglot object, created once (naming a dialect by string creates one per call).
    sql_dialect: Dialect = field(default_factory=lambda: Dialect.get_or_raise(DIALECT), compare=False)

    def table(self, sql_name: str) -> TablePolicy | None:
        return self.tables.get(sql_name.lower())

    @cached_property
    def generalised_columns(self) -> frozenset[str]:
        """Names of the columns masked with ``generalize`` (decided once: the context never changes)."""
        return frozenset(
            name
            for t in self.tables.values()
            for name, c in t.columns.items()
            if isinstance(c.rule.mask, GeneralizeMask)
        )

    @cached_property
    def uses_keyed_hash(self) -> bool:
        """Whether any column is masked with ``keyed_hash`` (decided once: the context never changes)."""
        return any(
            isinstance(c.rule.mask, KeywordMask) and c.rule.mask.kind == "keyed_hash"
            for t in self.tables.values()
            for c in t.columns.values()
        )


def build_context(scope: Scope, catalog: Catalog) -> tuple[PolicyContext, tuple[Finding, ...]]:
    """``compile_context`` with its scope findings returned alongside (the older form)."""
    ctx = compile_context(scope, catalog)
    return ctx, ctx.scope_findings


def compile_context(scope: Scope, catalog: Catalog) -> PolicyContext:
    """Join scope and catalog once; tables that cannot be resolved are left out and reported in
    ``scope_findings``.

    >>> from policies.examples import example_catalog, example_scope
    >>> ctx = compile_context(example_scope(), example_catalog())
    >>> sorted(ctx.tables), ctx.scope_findings
    (['citizens'], ())
    """
    findings: list[Finding] = []
    tables: dict[str, TablePolicy] = {}
    for key, grant in scope.datasets.items():
        try:
            schema = catalog.table(key)
        except UnknownReference as exc:
            findings.append(Finding("scope_unknown_dataset", exc.detail, key))
            continue
        sql_name = schema.name.lower()
        if sql_name in tables:
            findings.append(
                Finding(
                    "scope_duplicate_table",
                    f"two datasets of this scope have a table named {schema.name!r}; "
                    "a query could not tell them apart: grant only one of them",
                    key,
                )
            )
            continue
        dataset = "/".join(key.split("/")[:2])
        columns = {
            c.name.lower(): ColumnPolicy(
                c.name.lower(), c.type, _family(c, grant.rule(c.name)), grant.rule(c.name), c.cls
            )
            for c in schema.columns
        }
        condition = None
        if grant.row_filter is not None:
            try:
                condition = sqlglot.parse_one(grant.row_filter, dialect=DIALECT, into=exp.Condition)
                for node in condition.walk():
                    node._meta = None  # positions and comment hints: unused, and they slow every copy
            except SqlglotError as exc:
                # Reported like every scope finding, so every query under this scope is refused.
                findings.append(
                    Finding("scope_row_filter", f"{key}.row_filter: not a SQL condition ({exc})", key)
                )
        tables[sql_name] = TablePolicy(
            ref=TableRef(dataset=dataset, table=schema.name, sql_name=sql_name),
            unit=schema.unit.lower(),
            columns=MappingProxyType(columns),
            row_filter=grant.row_filter,
            row_filter_condition=condition,
            one_row_per_unit=schema.one_row_per_unit,
            unsampled=schema.one_row_per_unit or schema.unique_units,
        )
    mapping: dict[str, object] = {
        name: {c.name: c.type for c in t.columns.values()} for name, t in tables.items()
    }
    return PolicyContext(
        tables=MappingProxyType(tables),
        disclosure=scope.disclosure,
        scope_name=scope.name,
        scope_version=scope.version_id,
        schema=MappingSchema(mapping, dialect=DIALECT, normalize=False),  # names are lowercased above
        scope_findings=tuple(findings),
    )


def _family(column: ColumnSchema, rule: ColumnRule) -> str:
    """Type family of the column *as queries see it*, i.e. after its mask."""
    mask = rule.mask
    if mask is None:
        return column.family
    kind = getattr(mask, "kind", None)
    if kind in {"redact", "keyed_hash"} or hasattr(mask, "partial"):
        return "str"
    generalize = getattr(mask, "generalize", None)
    if generalize is not None and hasattr(generalize, "prefix"):
        return "str"
    return column.family


def check_scope(scope: Scope, catalog: Catalog) -> tuple[Finding, ...]:
    """Every way ``scope`` does not fit ``catalog`` (empty when it fits).

    >>> from policies.catalog import DatasetSchema
    >>> from policies.model import load_scope
    >>> cat = Catalog(datasets=(DatasetSchema(domain="hb", name="people", tables=(TableSchema(
    ...     name="people", unit="pid", columns=(ColumnSchema(name="pid", type="BIGINT"),)),)),))
    >>> scope = load_scope('{"scope": "s", "purpose": "p", "grantees": ["group:g"],'
    ...     '"valid": {"from": "2026-01-01", "until": "2026-02-01"},'
    ...     '"datasets": {"hb/people": {"columns": {"age": {"use": "group"}}}}}', fmt="json")
    >>> [f.rule for f in check_scope(scope, cat)]
    ['scope_unknown_column']
    """
    _, findings = build_context(scope, catalog)
    out = list(findings)
    for key, grant in scope.datasets.items():
        try:
            table = catalog.table(key)
        except UnknownReference:
            continue
        out.extend(_grant_findings(key, grant.unit, grant.row_filter, grant.columns, table))
    return tuple(out)


def _grant_findings(
    key: str, unit: str | None, row_filter: str | None, rules: Mapping[str, ColumnRule], table: TableSchema
) -> list[Finding]:
    out: list[Finding] = []
    if unit is not None and unit.lower() != table.unit.lower():
        out.append(
            Finding(
                "scope_unit_mismatch",
                f"{key}: unit {unit!r} differs from the catalog's privacy unit {table.unit!r}; "
                "omit 'unit' or use the catalog's",
                f"{key}.unit",
            )
        )
    for name, rule in rules.items():
        column = table.column(name)
        if column is None:
            known = ", ".join(c.name for c in table.columns)
            out.append(
                Finding(
                    "scope_unknown_column",
                    f"{key}: column {name!r} is not in table {table.name!r} (columns: {known})",
                    f"{key}.columns.{name}",
                )
            )
            continue
        out.extend(_mask_fits(key, column, rule))
        if name.lower() == table.unit.lower() and rule.use not in (Use.JOIN_KEY, Use.DENY):
            out.append(
                Finding(
                    "scope_unit_use",
                    f"{key}: the privacy unit {name!r} may only be join_key or deny",
                    f"{key}.columns.{name}",
                )
            )
    if row_filter is not None:
        out.extend(_row_filter_findings(key, row_filter, table))
    return out


def _mask_fits(key: str, column: ColumnSchema, rule: ColumnRule) -> list[Finding]:
    generalize = getattr(rule.mask, "generalize", None)
    where = f"{key}.columns.{column.name}.mask"
    if generalize is None:
        return []
    if isinstance(generalize, str) and column.family != "date":
        return [
            Finding(
                "scope_mask_type",
                f"{where}: generalize {generalize!r} needs a DATE or TIMESTAMP "
                f"column; {column.name!r} is {column.type}",
                where,
            )
        ]
    if hasattr(generalize, "width") and column.family != "num":
        return [
            Finding(
                "scope_mask_type",
                f"{where}: generalize width needs a numeric column; {column.name!r} is {column.type}",
                where,
            )
        ]
    return []


def _row_filter_findings(key: str, text: str, table: TableSchema) -> list[Finding]:
    where = f"{key}.row_filter"
    try:
        condition = sqlglot.parse_one(text, dialect=DIALECT, into=exp.Condition)
    except SqlglotError as exc:
        return [Finding("scope_row_filter", f"{where}: not a SQL condition ({exc})", where)]
    out = [Finding("scope_row_filter", f"{where}: {f.message}", where) for f in syntax_findings(condition)]
    for column in condition.find_all(exp.Column):
        if column.table or table.column(column.name) is None:
            out.append(
                Finding(
                    "scope_row_filter",
                    f"{where}: {column.sql(dialect=DIALECT)} is not a column of "
                    f"{table.name!r} (write bare column names)",
                    where,
                )
            )
    if any(condition.find_all(exp.Query, exp.AggFunc)):
        out.append(Finding("scope_row_filter", f"{where}: subqueries and aggregates are not allowed", where))
    return out
