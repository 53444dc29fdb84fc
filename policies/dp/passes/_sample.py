"""Shared by the bounding passes: the keyed, deterministic per-unit sample inside a table scan.

A scan ``<source> AS a`` becomes ``(SELECT * FROM <source> AS a QUALIFY <rank> OVER (PARTITION BY
a.<unit> ORDER BY <keyed hash>, <tie-break>) <= n [AND …]) AS a``, marked as a filtered scan of the
table so the analysis still sees the table itself, and as sampled (``SAMPLED_META``) so that no other
bounding pass samples it again. Which of a unit's rows are kept depends only on that unit's own rows
and the key: adding or removing another unit changes nothing about it, which is what the sensitivity
bounds of ``policies.dp.plan`` rely on. Where both bounds apply to one scan they share one QUALIFY,
whose windows share the partition and an order prefix: DuckDB sorts each unit's rows once.

The key is the execution parameter ``$sbx_dp_key``, never a literal: the rewritten SQL is shown to the
operator, and a key written into it would let them predict (and steer) which rows are kept. The
executor binds it from a secret sealed per scope lineage, so every job keeps the same rows.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.markers import FILTERED_SCAN_META
from policies.analysis.scopes import walk_same_query
from policies.analysis.syntax import DP_SAMPLING_FUNCTIONS, DP_SAMPLING_SYNTAX
from policies.passes._build import generated, ident

KEY_PARAMETER = "sbx_dp_key"
#: Set on a scan one bounding pass sampled: the other leaves it alone.
SAMPLED_META = "sbx_dp_sampled"
#: Node kinds (and functions) only these passes generate; the re-check after rewriting must accept
#: them where they carry the generated mark.
GENERATED_SYNTAX: frozenset[type[exp.Expr]] = DP_SAMPLING_SYNTAX
GENERATED_FUNCTIONS = DP_SAMPLING_FUNCTIONS


def keyed_hash(values: list[exp.Expr]) -> exp.Expr:
    """``hash($sbx_dp_key, v1, v2, ...)``: DuckDB's 64-bit hash of the values, seeded with the key.

    Not a cryptographic PRF, and it need not be: the DP guarantee rests on each unit keeping at most
    ``n`` of its own rows, whichever they are; the key only keeps the choice from being predictable in
    practice. SHA-256 over the row's text cost twice as much again (measured: 1.26 s against 0.6 s over
    a million rows), for no privacy gained. Rows with equal hashes agree, but for a 2^-64 chance, on
    every column hashed (``read_columns``: every column the query reads), so which of them is kept does
    not change the result.
    """
    return exp.Anonymous(
        this="hash", expressions=[exp.Placeholder(this=KEY_PARAMETER), *(v.copy() for v in values)]
    )


def sampled_scan(
    scan: exp.Expr, *, alias: str, table: str, unit: str, bounds: list[tuple[exp.Expr, list[exp.Expr], int]]
) -> exp.Subquery:
    """Wrap ``scan`` (a table or filtered scan aliased ``alias``) so that each unit keeps only the rows
    where every ``rank OVER (PARTITION BY unit ORDER BY order) <= limit`` of ``bounds`` holds."""
    conditions: list[exp.Expr] = []
    for rank, order, limit in bounds:
        window = exp.Window(
            this=rank,
            partition_by=[exp.Column(this=ident(unit), table=ident(alias))],
            order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]),
        )
        conditions.append(exp.LTE(this=window, expression=exp.Literal.number(limit)))
    condition = conditions[0]
    for more in conditions[1:]:
        condition = exp.And(this=condition, expression=more)
    inner = exp.Select(
        expressions=[exp.Star()], from_=exp.From(this=scan), qualify=exp.Qualify(this=condition)
    )
    wrapped = exp.Subquery(this=inner, alias=exp.TableAlias(this=ident(alias)))
    generated(wrapped)
    wrapped.meta[FILTERED_SCAN_META] = table
    wrapped.meta[SAMPLED_META] = True
    return wrapped


def read_columns(select: exp.Select, alias: str, every: list[str]) -> list[str]:
    """The columns of the scan ``alias`` that ``select`` reads (sorted), or ``every`` column where that
    cannot be told (a star left standing).

    Only these need to enter the row hash: rows that agree on every column the query reads are
    interchangeable, so whichever of them the sample keeps, the result is the same (and the same on
    every run). Hashing the two columns a query read instead of a nine-column row took 40 % off the
    sample (measured on 3 million rows). Columns read only by the row filter are not among them: the
    filter runs inside the scan, before the sample.
    """
    wanted = alias.lower()
    names: set[str] = set()
    for node in walk_same_query(select):
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            return sorted(every)
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return sorted(every)
            if node.table.lower() == wanted:
                names.add(node.name.lower())
    known = {name.lower(): name for name in every}
    return sorted(known[n] for n in names if n in known)
