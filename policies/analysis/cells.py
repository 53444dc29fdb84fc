"""Conditional cells: one-branch CASE buckets directly inside an aggregate, which the checks accept
like FILTER cells and the ``neutralise_small_subsets`` pass neutralises like them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from policies.analysis.syntax import AGGREGATES


@dataclass(frozen=True)
class Bucket:
    condition: exp.Expr
    branches: tuple[exp.Expr, ...]  # the values the bucket can take
    argument: exp.Expr  # the CASE or IF itself


def bucket_of(node: exp.Expr) -> Bucket | None:
    """The bucket of ``AGG(CASE WHEN c THEN a [ELSE b] END)`` or ``AGG(IF(c, a, b))``, else ``None``.

    >>> import sqlglot
    >>> bucket_of(sqlglot.parse_one("AVG(CASE WHEN sex = 'F' THEN 1.0 ELSE 0.0 END)")).condition.sql()
    "sex = 'F'"
    >>> bucket_of(sqlglot.parse_one("SUM(CASE WHEN a THEN 1 WHEN b THEN 2 END)")) is None
    True
    """
    if type(node) not in AGGREGATES:
        return None
    arg = node.this
    while isinstance(arg, exp.Paren | exp.Try):  # TRY: the engine's own error containment
        arg = arg.this
    if isinstance(arg, exp.If):
        values = (arg.args.get("true"), arg.args.get("false"))
        return Bucket(arg.this, tuple(v for v in values if v is not None), arg)
    if isinstance(arg, exp.Case) and arg.this is None and len(arg.args.get("ifs") or ()) == 1:
        branch = arg.args["ifs"][0]
        values = (branch.args.get("true"), arg.args.get("default"))
        return Bucket(branch.this, tuple(v for v in values if v is not None), arg)
    return None
