"""The tables a Python or mock job sees, as one SELECT per table built from the scope (pure).

The service stores each :class:`InputSelect` on the job and the executor runs it in the sandbox.

The SELECTs reuse the policy engine's own pieces, so a Python job sees exactly what a SQL job could
reach: the row filter as the same filtered subquery ``apply_row_filters`` injects, every masked or
bounded column through ``apply_masks.mask_expression``, denied columns left out. The privacy unit
and other join keys come out raw and are replaced by per-job pseudonyms inside the sandbox.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from policies.catalog import Catalog, domain_of
from policies.context import DIALECT, TableRef, build_context
from policies.errors import UnknownReference
from policies.findings import Finding
from policies.model import KeywordMask, Scope, Use
from policies.passes.apply_masks import mask_expression


@dataclass(frozen=True)
class InputSelect:
    """One table as the job sees it: ``sql`` reads the source table registered as ``name`` and returns
    the visible columns; ``pseudonymise`` lists the columns the sandbox replaces by per-job pseudonyms.
    ``group_columns``: the columns a SQL job could group by (use group or plain); ``aggregate()``
    releases automatically only tables keyed by these, unmodified."""

    name: str
    sql: str
    unit: str
    pseudonymise: tuple[str, ...] = ()
    group_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputPlan:
    """Every table of the scope as a job input; ``findings`` when the scope does not fit the catalog."""

    inputs: tuple[InputSelect, ...]
    tables: tuple[TableRef, ...]
    uses_keyed_hash: bool
    findings: tuple[Finding, ...] = ()

    @property
    def domains(self) -> frozenset[str]:
        """The domains whose datasets the plan reads (a dataset is ``<domain>/<name>``)."""
        return frozenset(domain_of(t.dataset) for t in self.tables)

    @property
    def sql_text(self) -> str:
        """The SELECTs, for the job record (what the job's tables are made of)."""
        return ";\n".join(f"-- {q.name}\n{q.sql}" for q in self.inputs)


#: What the input SELECTs apply, in order (recorded on the job like SQL rewrite passes).
APPLIED = ("apply_row_filters", "apply_masks", "drop_denied_columns", "pseudonymise_join_keys")


def input_plan(scope: Scope, catalog: Catalog, *, only: Collection[str] | None = None) -> InputPlan:
    """One :class:`InputSelect` per table the scope grants (``only``: per such table registered under
    one of these names; a Python job's plan holds only the tables its code reads).

    >>> from policies.examples import example_catalog, example_scope
    >>> plan = input_plan(example_scope(), example_catalog())
    >>> [q.name for q in plan.inputs][:1], "national_id" in plan.inputs[0].sql
    (['citizens'], False)
    >>> input_plan(example_scope(), example_catalog(), only=["visits"]).inputs
    ()
    """
    ctx, findings = build_context(scope, catalog)
    inputs: list[InputSelect] = []
    tables: list[TableRef] = []
    keyed = False
    for key in scope.datasets:
        try:
            schema = catalog.table(key)
        except UnknownReference:
            continue  # reported by build_context
        policy = ctx.table(schema.name)
        if policy is None:
            continue
        name = policy.ref.sql_name
        if only is not None and name not in only:
            continue
        projections: list[exp.Expr] = []
        pseudonymised: list[str] = []
        groupable: list[str] = []
        for column in schema.columns:
            rule = policy.column(column.name)
            if rule is None:
                continue
            ref = exp.column(column.name, table=name, quoted=True)
            value: exp.Expr
            if column.name.lower() == policy.unit or rule.use is Use.JOIN_KEY:
                value = ref  # raw here; the sandbox replaces it by a per-job pseudonym
                pseudonymised.append(column.name)
            elif rule.use is Use.DENY:
                continue
            elif rule.rule.mask is not None or rule.rule.bounds is not None:
                value = mask_expression(ref, rule)
                mask = rule.rule.mask
                keyed = keyed or (isinstance(mask, KeywordMask) and mask.kind == "keyed_hash")
            else:
                value = ref
            if rule.use in (Use.GROUP, Use.PLAIN) and column.name.lower() != policy.unit:
                groupable.append(column.name)
            projections.append(exp.alias_(value, column.name, quoted=True))
        inner = exp.select("*").from_(exp.Table(this=exp.to_identifier(name, quoted=True)))
        if policy.row_filter is not None:
            inner = inner.where(sqlglot.parse_one(policy.row_filter, dialect=DIALECT, into=exp.Condition))
        source = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
        query = exp.select(*projections).from_(source)
        unit = next((c.name for c in schema.columns if c.name.lower() == policy.unit), schema.unit)
        inputs.append(
            InputSelect(
                name=name,
                sql=query.sql(dialect=DIALECT),
                unit=unit,
                pseudonymise=tuple(pseudonymised),
                group_columns=tuple(groupable),
            )
        )
        tables.append(policy.ref)
    return InputPlan(
        inputs=tuple(inputs), tables=tuple(tables), uses_keyed_hash=keyed, findings=tuple(findings)
    )
