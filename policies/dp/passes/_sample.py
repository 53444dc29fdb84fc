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
    scan: exp.Expr,
    *,
    alias: str,
    table: str,
    unit: str,
    bounds: list[tuple[exp.Expr, list[exp.Expr], int]],
    light_first: bool = False,
    extra: list[exp.Expr] | None = None,
) -> exp.Subquery:
    """Wrap ``scan`` (a table or filtered scan aliased ``alias``) so that each unit keeps only the rows
    where every ``rank OVER (PARTITION BY unit ORDER BY order) <= limit`` of ``bounds`` holds.

    ``light_first``: rank only the units that have more rows than the smallest limit (``light_units``);
    every other unit is within every bound already, so all its rows are kept without a sort. The rows
    kept are exactly those of the plain sample. ``extra``: projections added after ``*`` (plain sample
    only)."""
    conditions: list[exp.Expr] = []
    for rank, order, limit in bounds:
        window = unit_window(rank, alias=alias, unit=unit, order=order)
        if light_first:
            # ``BETWEEN 1 AND n`` (a row number is never below 1): the same rows as ``<= n``, but
            # DuckDB (2.0) rewrites ``ROW_NUMBER() … <= n`` into a per-unit top-n aggregate, which
            # took twice the sort's time on the units above the bound (``light_units``).
            bound: exp.Expr = exp.Between(
                this=window, low=exp.Literal.number(1), high=exp.Literal.number(limit)
            )
        else:
            bound = exp.LTE(this=window, expression=exp.Literal.number(limit))
        conditions.append(bound)
    condition = conditions[0]
    for more in conditions[1:]:
        condition = exp.And(this=condition, expression=more)
    if light_first:
        body: exp.Query = light_units(
            scan, alias=alias, unit=unit, fits=min(b[2] for b in bounds), qualify=condition
        )
    else:
        body = exp.Select(
            expressions=[exp.Star(), *(extra or ())],
            from_=exp.From(this=scan),
            qualify=exp.Qualify(this=condition),
        )
    wrapped = exp.Subquery(this=body, alias=exp.TableAlias(this=ident(alias)))
    generated(wrapped)
    wrapped.meta[FILTERED_SCAN_META] = table
    wrapped.meta[SAMPLED_META] = True
    return wrapped


def unit_window(rank: exp.Expr, *, alias: str, unit: str, order: list[exp.Expr]) -> exp.Window:
    """``rank OVER (PARTITION BY alias.unit ORDER BY order)``."""
    return exp.Window(
        this=rank,
        partition_by=[exp.Column(this=ident(unit), table=ident(alias))],
        order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]),
    )


HEAVY_CTE = "_sbx_dp_heavy"


def light_units(scan: exp.Expr, *, alias: str, unit: str, fits: int, qualify: exp.Expr) -> exp.Query:
    """The per-unit sample with the sort spent only on the units that need it.

    A unit with at most ``fits`` rows (the smallest limit of the sample) keeps every row whatever the
    order: it has at most ``fits`` rows and so at most ``fits`` groups. Only the units with more rows
    (``_sbx_dp_heavy``: one hash aggregate over the scan, no sort) go through the ranked QUALIFY::

        WITH _sbx_dp_heavy AS (SELECT a.unit FROM scan AS a GROUP BY a.unit HAVING COUNT(*) > fits)
        SELECT * FROM scan AS a WHERE NOT EXISTS (… unit IS NOT DISTINCT FROM a.unit)   -- every row
        UNION ALL
        SELECT * FROM scan AS a WHERE EXISTS (…) QUALIFY <rank> <= n …                   -- ranked

    Which branch a unit's rows take depends on its own row count only, so the rows kept are exactly
    those of the plain sample (``test_bounding_cost.py`` compares both on data with light and heavy
    units), and each unit's contribution stays a function of its own rows. ``IS NOT DISTINCT FROM``: a
    NULL unit is one partition in the window, and one group here. Measured: on a table where most
    units fit the bound, a half to a quarter of the sorted sample's time.
    """
    unit_here = exp.Column(this=ident(unit), table=ident(alias))
    heavy = exp.Select(
        expressions=[unit_here.copy()],
        from_=exp.From(this=scan.copy()),
        group=exp.Group(expressions=[unit_here.copy()]),
        having=exp.Having(this=exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(fits))),
    )

    def is_heavy() -> exp.Exists:
        probe = exp.Select(
            expressions=[exp.Literal.number(1)],
            from_=exp.From(
                this=exp.Table(this=ident(HEAVY_CTE), alias=exp.TableAlias(this=ident(HEAVY_CTE)))
            ),
            where=exp.Where(
                this=exp.NullSafeEQ(
                    this=exp.Column(this=ident(unit), table=ident(HEAVY_CTE)), expression=unit_here.copy()
                )
            ),
        )
        return exp.Exists(this=probe)

    light = exp.Select(
        expressions=[exp.Star()],
        from_=exp.From(this=scan.copy()),
        where=exp.Where(this=exp.Not(this=is_heavy())),
    )
    ranked = exp.Select(
        expressions=[exp.Star()],
        from_=exp.From(this=scan),
        where=exp.Where(this=is_heavy()),
        qualify=exp.Qualify(this=qualify),
    )
    union = exp.Union(this=light, expression=ranked, distinct=False)
    union.set(
        "with_", exp.With(expressions=[exp.CTE(this=heavy, alias=exp.TableAlias(this=ident(HEAVY_CTE)))])
    )
    return union


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
