"""Shared by the bounding passes: the keyed, deterministic per-unit sample inside a table scan.

A scan ``<source> AS a`` becomes ``(SELECT * FROM <source> AS a QUALIFY <rank> OVER (PARTITION BY
a.<unit> ORDER BY <keyed hash>, <tie-break>) <= n) AS a``, marked as a filtered scan of the table so the
analysis still sees the table itself. Which of a unit's rows are kept depends only on that unit's own
rows and the key: adding or removing another unit changes nothing about it, which is what the
sensitivity bounds of ``policies.dp.plan`` rely on.

The key is the execution parameter ``$sbx_dp_key``, never a literal: the rewritten SQL is shown to the
operator, and a key written into it would let them predict (and steer) which rows are kept. The
executor binds it from a secret sealed per scope lineage, so every job keeps the same rows.
"""

from __future__ import annotations

from sqlglot import exp

from policies.analysis.markers import FILTERED_SCAN_META
from policies.analysis.syntax import DP_SAMPLING_FUNCTIONS, DP_SAMPLING_SYNTAX
from policies.passes._build import generated, ident

KEY_PARAMETER = "sbx_dp_key"
#: Node kinds (and functions) only these passes generate; the re-check after rewriting must accept
#: them where they carry the generated mark.
GENERATED_SYNTAX: frozenset[type[exp.Expr]] = DP_SAMPLING_SYNTAX
GENERATED_FUNCTIONS = DP_SAMPLING_FUNCTIONS


def keyed_hash(values: list[exp.Expr]) -> exp.Expr:
    """``hash($sbx_dp_key, v1, v2, ...)``: DuckDB's 64-bit hash of the values, seeded with the key.

    Not a cryptographic PRF, and it need not be: the DP guarantee rests on each unit keeping at most
    ``n`` of its own rows, whichever they are; the key only keeps the choice from being predictable in
    practice. SHA-256 over the row's text cost twice as much again (measured: 1.26 s against 0.6 s over
    a million rows), for no privacy gained. Rows with equal hashes are, but for a 2^-64 chance,
    identical, so which of them is kept does not change the result.
    """
    return exp.Anonymous(
        this="hash", expressions=[exp.Placeholder(this=KEY_PARAMETER), *(v.copy() for v in values)]
    )


def sampled_scan(
    scan: exp.Expr, *, alias: str, table: str, unit: str, rank: exp.Expr, order: list[exp.Expr], limit: int
) -> exp.Subquery:
    """Wrap ``scan`` (a table or filtered scan aliased ``alias``) so each unit keeps ``rank <= limit``."""
    window = exp.Window(
        this=rank,
        partition_by=[exp.Column(this=ident(unit), table=ident(alias))],
        order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]),
    )
    inner = exp.Select(
        expressions=[exp.Star()],
        from_=exp.From(this=scan),
        qualify=exp.Qualify(this=exp.LTE(this=window, expression=exp.Literal.number(limit))),
    )
    wrapped = exp.Subquery(this=inner, alias=exp.TableAlias(this=ident(alias)))
    generated(wrapped)
    wrapped.meta[FILTERED_SCAN_META] = table
    return wrapped
