"""Lineage: which catalog columns flow into a value, how directly (``Shape``), its type family, and
whether it is an aggregate (``Info``); how the facts of an expression's parts combine (``merge``).

The shape and family of every sqlglot expression class are decided once, at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

from sqlglot import exp

from policies.model import Use


class Shape(IntEnum):
    """How a column's value reaches an expression, from most to least direct."""

    PURE = 0  # the value itself (possibly masked)
    ARITH = 1  # arithmetic with constants or other columns
    OTHER = 2  # through any other function
    COND = 3  # through a condition that can blank rows out (CASE, IF, COALESCE, NULLIF, a predicate)


@dataclass(frozen=True)
class Origin:
    table: str
    column: str
    use: Use
    # Hashed once: origins are dictionary keys in every merge of lineages.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.table, self.column, self.use)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class Info:
    lineage: dict[Origin, Shape]
    family: str | None
    aggregate: bool = False

    @property
    def protected(self) -> bool:
        """Whether any non-``plain`` column flows into the value."""
        return any(o.use is not Use.PLAIN for o in self.lineage)


CONST = Info({}, None)


_COND = (exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Predicate, exp.Connector, exp.Not, exp.Filter)
_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg)
_NUM = (
    *_ARITH,
    exp.Year,
    exp.Month,
    exp.Day,
    exp.Quarter,
    exp.DayOfWeek,
    exp.Extract,
    exp.Length,
    exp.Round,
    exp.Floor,
    exp.Ceil,
    exp.Abs,
    exp.Sign,
    exp.Count,
    exp.Sum,
    exp.Avg,
    exp.Stddev,
    exp.StddevSamp,
    exp.StddevPop,
    exp.Variance,
    exp.VariancePop,
)
_STR = (
    exp.Upper,
    exp.Lower,
    exp.Substring,
    exp.Left,
    exp.Right,
    exp.Concat,
    exp.DPipe,
    exp.Trim,
    exp.TimeToStr,
)
_DATE = (exp.TimestampTrunc, exp.DateTrunc)
_BOOL = (exp.Predicate, exp.Connector, exp.Not, exp.Exists, exp.StartsWith)


def merge(infos: list[Info], shape: Shape) -> Info:
    if len(infos) == 1 and (shape is Shape.PURE or not infos[0].lineage):
        return infos[0]  # nothing to combine, no shape to raise: the same facts (infos are immutable)
    lineage: dict[Origin, Shape] = {}
    for info in infos:
        for origin, inner in info.lineage.items():
            combined = max(inner, shape)
            lineage[origin] = max(lineage.get(origin, Shape.PURE), combined)
    family = next((i.family for i in infos if i.family is not None), None)
    return Info(lineage, family, any(i.aggregate for i in infos))


def _class_shape(kind: type[exp.Expr]) -> Shape:
    if issubclass(kind, _COND):
        return Shape.COND
    if issubclass(kind, _ARITH):
        return Shape.ARITH
    return Shape.OTHER


_BY_CHILDREN = "children"  # the family comes from the node's arguments (or, for casts and CASE, its own)


def _class_family(kind: type[exp.Expr]) -> str | None:
    if issubclass(kind, _BOOL):
        return "bool"
    if issubclass(kind, _NUM):
        return "num"
    if issubclass(kind, _STR):
        return "str"
    if issubclass(kind, _DATE):
        return "date"
    return _BY_CHILDREN


def _expression_classes() -> list[type[exp.Expr]]:
    out: list[type[exp.Expr]] = []
    stack: list[type[exp.Expr]] = [exp.Expr]
    while stack:
        kind = stack.pop()
        out.append(kind)
        stack.extend(kind.__subclasses__())
    return out


#: Shape and class-decided family of every expression class, computed once at import: ``isinstance``
#: against the long tuples above costs more than the rest of an info. (A class defined later, by a
#: dialect, is decided when it is met.)
_SHAPES: Mapping[type[exp.Expr], Shape] = MappingProxyType(
    {k: _class_shape(k) for k in _expression_classes()}
)
_FAMILIES: Mapping[type[exp.Expr], str | None] = MappingProxyType({k: _class_family(k) for k in _SHAPES})


def shape_of(node: exp.Expr) -> Shape:
    kind = type(node)
    shape = _SHAPES.get(kind)
    return _class_shape(kind) if shape is None else shape


def family_of(node: exp.Expr, children: list[Info]) -> str | None:
    kind = type(node)
    family = _FAMILIES[kind] if kind in _FAMILIES else _class_family(kind)
    if family is not _BY_CHILDREN:
        return family
    if isinstance(node, exp.Cast):
        return cast_family(node.to)
    if isinstance(node, exp.Case):
        values = [node.args.get("default")] + [i.args.get("true") for i in node.args.get("ifs") or ()]
        return next(
            (f for v in values if v is not None and (f := _literal_family(v)) is not None), None
        ) or next((c.family for c in children if c.family), None)
    return next((c.family for c in children if c.family is not None), None)


def _literal_family(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Literal):
        return "str" if node.is_string else "num"
    return None


def cast_family(to: exp.DataType) -> str | None:
    name = to.this.name.upper() if to.this is not None else ""
    if name in {"VARCHAR", "TEXT", "CHAR"}:
        return "str"
    if name in {"DATE", "TIMESTAMP", "DATETIME"}:
        return "date"
    if name in {"BOOLEAN"}:
        return "bool"
    return "num"
