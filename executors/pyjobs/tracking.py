"""The hooks that follow every value of a Python job from the inputs to ``aggregate()``.

The runtime hands the job its input frames as :class:`~executors.pyjobs.taint.Tracked` boxes and
installs these hooks (``instrument`` routes the job's operations to them). Each hook opens the boxes
it is given, lets the guards decide whether the operation is allowed at all, performs it on the
plain values, and boxes the result with its provenance: row-local when the operation is on the
allow-list of ``rules`` and lines its operands up row by row, tainted (naming the operation and
line) otherwise. When unsure, it taints.

Three things taint the whole run rather than one value, because they let data steer the code:
a branch or loop on data (``if``, ``while``, ``and``/``or``, a ``for`` over data values), an
``except`` block (whether an exception is raised may depend on data), and a callback that changes a
container (state carried from one row to the next).

The rules live next door: ``indexing`` (item reads), ``writers`` (assignments), ``methods`` (calls of
methods and library functions), ``aggregate_hook`` (what ``aggregate()`` makes of the provenance),
``units`` (units behind a value, for the report) and ``rules`` (the allow-list of row-local names).
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np
import pandas as pd
from RestrictedPython.Guards import guarded_unpack_sequence

from executors.pyjobs import indexing, rules
from executors.pyjobs.aggregate_hook import AggregateHook
from executors.pyjobs.compile import JOB_FILENAME
from executors.pyjobs.disclosure import DisclosureFinding
from executors.pyjobs.guards import Guards
from executors.pyjobs.helpers import Aggregator, ReleasableTable
from executors.pyjobs.taint import (
    ACCESSORS,
    UNKNOWN,
    Prov,
    RowSpace,
    Taint,
    Tracked,
    TrackedIndexer,
    TrackedMethod,
    deep_unwrap,
    is_data,
    is_scalar,
    join,
    positions_of,
    sources_of,
    union_sources,
    unwrap,
)
from executors.pyjobs.units import condition_sides
from executors.pyjobs.writers import ContainerWriter, FrameWriter, IndexerWriter, SeriesWriter

_OPERATORS: Mapping[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "lshift": operator.lshift,
    "rshift": operator.rshift,
    "or_": operator.or_,
    "xor": operator.xor,
    "and_": operator.and_,
    "matmul": operator.matmul,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "is_": operator.is_,
    "is_not": operator.is_not,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}
_INPLACE_NAMES: Mapping[str, str] = {
    "+=": "add", "-=": "sub", "*=": "mul", "/=": "truediv", "//=": "floordiv", "%=": "mod", "**=": "pow",
    "<<=": "lshift", ">>=": "rshift", "|=": "or_", "^=": "xor", "&=": "and_", "@=": "matmul",
}  # fmt: skip
_UNARY: Mapping[str, Callable[[Any], Any]] = {
    "neg": operator.neg,
    "pos": operator.pos,
    "invert": operator.invert,
}
_PANDAS = (pd.DataFrame, pd.Series)
_UNPACK: Callable[[Any, Any, Any], Any] = guarded_unpack_sequence
_CONVERSIONS: Mapping[int, Callable[[Any], str]] = {115: str, 114: repr, 97: ascii}


def is_job_function(value: object) -> bool:
    """Whether ``value`` is a function the job defined (its code is instrumented too)."""
    code = getattr(value, "__code__", None)
    return getattr(code, "co_filename", None) == JOB_FILENAME


def function_name(function: object) -> str:
    """How the report names a library function: ``numpy.max``, ``pandas.concat``, ``len``.

    >>> function_name(np.max), function_name(len), function_name(np.log)
    ('numpy.max', 'len', 'numpy.log')
    """
    name = str(getattr(function, "__name__", type(function).__name__))
    if isinstance(function, np.ufunc):
        return f"numpy.{name}"
    top = str(getattr(function, "__module__", "") or "").split(".")[0]
    return f"{top}.{name}" if top in {"numpy", "pandas", "math", "statistics"} else name


class Tracker:
    """Provenance hooks of one run (never shared between runs)."""

    def __init__(self, guards: Guards, *, unit_column: str, min_units: int) -> None:
        self.guards = guards
        self.unit = unit_column
        self.min_units = min_units
        self.run_taint: Taint | None = None
        self.cell_findings: list[DisclosureFinding] = []
        self._callback_depth = 0
        self._callback_taint: Taint | None = None

    # -- inputs and naming ----------------------------------------------------------------------------
    def track_input(self, name: str, frame: pd.DataFrame) -> Tracked:
        """An input table as the job receives it: every column row-local, rows of its own space."""
        units = frame[self.unit] if self.unit in frame.columns else None
        space = RowSpace(name, people=units is not None, units=units)
        sources = {c: frozenset({str(c)}) for c in frame.columns}
        return Tracked(frame, Prov(rows=space, columns=dict.fromkeys(frame.columns), column_sources=sources))

    def line(self) -> int | None:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == JOB_FILENAME:
                return frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def taint(self, what: str) -> Taint:
        line = self.line()
        return Taint(f"{what} at line {line}" if line is not None else what)

    def _taint_run(self, what: str) -> None:
        if self.run_taint is None:
            self.run_taint = self.taint(what)

    # -- truth tests and control flow -----------------------------------------------------------------
    def test(self, value: object) -> bool:
        """``if``/``while``/conditional tests: a test on data steers the code by data."""
        if is_data(value):
            reason = deep_unwrap(value)[1]
            self._taint_run(f"a branch on a value from data ({reason or 'row values'})")
        return bool(unwrap(value))

    def and_(self, first: object, later: Callable[[], object]) -> object:
        return later() if self.test(first) else first

    def or_(self, first: object, later: Callable[[], object]) -> object:
        return first if self.test(first) else later()

    def not_(self, value: object) -> bool:
        return not self.test(value)

    def caught(self) -> None:
        self._taint_run("an exception handled (whether it is raised may depend on data)")

    # -- operators ------------------------------------------------------------------------------------
    def op(self, name: str, left: object, right: object) -> Any:
        function = _OPERATORS[name]
        if not (is_data(left) or is_data(right)):
            return function(left, right)
        raw_left, raw_right = deep_unwrap(left)[0], deep_unwrap(right)[0]
        result = function(raw_left, raw_right)
        return self.combine(result, [left, right], what="an operator on data")

    def chain(self, names: Sequence[str], *operands: object) -> Any:
        result: Any = True
        for name, left, right in zip(names, operands, operands[1:], strict=False):
            result = self.op(name, left, right)
            if not self.test(result):
                return result
        return result

    def unary(self, name: str, operand: object) -> Any:
        if not isinstance(operand, Tracked):
            return _UNARY[name](operand)
        return self.combine(_UNARY[name](operand.value), [operand], what="an operator on data")

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        if self._callback_depth and isinstance(target, (list, dict, set)):
            self._taint_run("a callback that keeps state across rows")
        if is_data(target) or is_data(value):
            return self.op(_INPLACE_NAMES[op], target, value)
        return self.guards.inplacevar(op, target, value)

    def fstring(self, parts: Sequence[object]) -> Any:
        pieces: list[str] = []
        taint: Taint | None = None
        data = False
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value, conversion, spec = cast(tuple[Any, int, Any], part)
            if is_data(value) or is_data(spec):
                data = True
                taint = join(taint, deep_unwrap(value)[1], deep_unwrap(spec)[1])
            raw = unwrap(value)
            convert = _CONVERSIONS.get(conversion)
            pieces.append(format(convert(raw) if convert else raw, str(unwrap(spec))))
        text = "".join(pieces)
        return Tracked(text, Prov(taint or self.taint("data formatted into a string"))) if data else text

    def combine(self, result: object, operands: Sequence[object], *, what: str) -> Any:
        """Provenance of an element-wise result of ``operands`` (boxes or plain values)."""
        base = next((o for o in operands if isinstance(o, Tracked) and o.prov.rows is not None), None)
        taint = join(*(deep_unwrap(o)[1] for o in operands))
        if base is None:
            return Tracked(result, Prov(taint or self.taint(what)))
        positions = positions_of(base)
        for operand in operands:
            taint = join(taint, self.misaligned(base.prov.rows, positions, operand))
        if isinstance(result, pd.DataFrame):
            columns = {c: _column_taint(operands, c) for c in result.columns}
            column_sources = {c: _column_sources(operands, c) for c in result.columns}
            known = {c: s for c, s in column_sources.items() if s is not None}
            return Tracked(result, Prov(taint, base.prov.rows, None, columns, column_sources=known))
        sources = union_sources(*(sources_of(o) for o in operands))
        if isinstance(result, pd.Series):
            prov = Prov(join(taint, *(_any(o) for o in operands)), base.prov.rows, sources=sources)
            return self.condition(Tracked(result, prov))
        if isinstance(result, np.ndarray) and result.ndim >= 1:
            taint = join(taint, *(_any(o) for o in operands))
            return Tracked(result, Prov(taint, base.prov.rows, positions, sources=sources))
        return Tracked(result, Prov(taint or self.taint(what)))

    def misaligned(self, rows: RowSpace | None, positions: pd.Index | None, operand: object) -> Taint | None:
        """Why ``operand`` does not line up with ``rows`` (None when it does, or is a constant)."""
        if not isinstance(operand, Tracked):
            if is_scalar(operand) or isinstance(operand, (dict, type)) or callable(operand):
                return None
            return self.taint("positional values (a list or array not traced to these rows)")
        raw, prov = operand.value, operand.prov
        if isinstance(raw, _PANDAS):
            if prov.rows is not rows:
                return self.taint("values of other rows (another table, or rows re-keyed)")
            return None
        if isinstance(raw, np.ndarray) and raw.ndim >= 1:
            if prov.rows is not rows or prov.positions is None or positions is None:
                return self.taint("positional values that do not line up with the rows")
            if not prov.positions.equals(positions):
                return self.taint("positional values that do not line up with the rows")
            return None
        return None

    # -- attributes -----------------------------------------------------------------------------------
    def getattr(self, obj: object, name: str, default: object = None) -> Any:
        if not isinstance(obj, Tracked):
            value = self.guards.getattr(obj, name)
            if isinstance(obj, ReleasableTable):
                return Tracked(value, Prov(self.taint("values of an aggregate() table (.frame)")))
            return value
        value = self.guards.getattr(obj.value, name)
        return self._attribute(obj, name, value)

    def getattr_builtin(self, obj: object, name: str, *default: object) -> Any:
        if is_data(name):
            self._taint_run("an attribute chosen by a value from data")
        try:
            return self.getattr(obj, unwrap(name))
        except AttributeError:
            if default:
                return default[0]
            raise

    def hasattr_builtin(self, obj: object, name: str) -> bool:
        return self.guards.hasattr_builtin(unwrap(obj), unwrap(name))

    def _attribute(self, box: Tracked, name: str, value: Any) -> Any:
        raw, prov = box.value, box.prov
        if isinstance(raw, _PANDAS):
            if name in {"loc", "iloc", "at", "iat"}:
                return TrackedIndexer(value, box, name)
            if name in {"str", "dt", "cat"}:
                return Tracked(value, Prov(prov.any_taint(), prov.rows, sources=prov.sources))
            schema_known = isinstance(raw, pd.Series) or prov.columns is not None
            if name in rules.SCHEMA_PROPERTIES and prov.taint is None and schema_known:
                return value
            if name in {"values", "array"}:
                return Tracked(value, Prov(prov.any_taint(), prov.rows, raw.index))
        if isinstance(raw, ACCESSORS) and not callable(value):
            if name in rules.ACCESSOR_CROSS_ROW:
                return Tracked(value, Prov(self.taint(f".{name}")))
            return Tracked(value, Prov(prov.taint, prov.rows, sources=prov.sources))
        if callable(value) and not isinstance(value, (*_PANDAS, np.ndarray)):
            return TrackedMethod(value, box, name)
        return Tracked(value, Prov(prov.any_taint() or self.taint(f".{name}")))

    # -- items ----------------------------------------------------------------------------------------
    def getitem(self, obj: object, key: object) -> Any:
        return indexing.getitem(self, obj, key)

    # -- writes ---------------------------------------------------------------------------------------
    def write(self, obj: object) -> Any:
        if isinstance(obj, TrackedIndexer):
            return IndexerWriter(self, obj)
        if isinstance(obj, Tracked):
            if isinstance(obj.value, pd.DataFrame):
                return FrameWriter(self, obj)
            if isinstance(obj.value, pd.Series):
                return SeriesWriter(self, obj)
            obj.prov = obj.prov.tainted(self.taint("a value changed in place"))
            return self.guards.write(obj.value)
        if isinstance(obj, (dict, list)):
            if self._callback_depth:
                self._taint_run("a callback that keeps state across rows")
            return ContainerWriter(obj)
        return self.guards.write(obj)

    def value_taint(self, frame: Tracked, value: object) -> Taint | None:
        """Taint of ``value`` written as a column of ``frame`` (scalars broadcast; sequences must line
        up with the frame's rows)."""
        if not isinstance(value, Tracked):
            if is_scalar(value):
                return None
            return deep_unwrap(value)[1] or self.taint(
                "positional values (a list or array not traced to these rows) written"
            )
        raw, prov = value.value, value.prov
        if isinstance(raw, (*_PANDAS, np.ndarray)) and not (isinstance(raw, np.ndarray) and raw.ndim == 0):
            return join(prov.any_taint(), self.misaligned(frame.prov.rows, positions_of(frame), value))
        return prov.any_taint() or self.taint("a value taken from data")

    def set_column(self, box: Tracked, key: object, value: object) -> None:
        frame: pd.DataFrame = box.value
        raw_key, key_taint = deep_unwrap(key)
        self.guards.refuse_unit_labels(_as_labels(raw_key))
        taint = join(key_taint, self.value_taint(box, value))
        frame[raw_key] = deep_unwrap(value)[0]
        self.mark_columns(box, _as_labels(raw_key), taint, replace_old=True, sources=sources_of(value))
        if is_data(key):
            box.prov = box.prov.tainted(key_taint or self.taint("a column named by a data value"))

    def mark_columns(
        self,
        box: Tracked,
        labels: Sequence[object],
        taint: Taint | None,
        *,
        replace_old: bool,
        sources: frozenset[str] | None,
    ) -> None:
        """Columns ``labels`` of ``box`` were written with a value of ``taint`` computed from
        ``sources``; unless ``replace_old``, the rows not written keep what they had."""
        prov = box.prov
        if prov.columns is None:
            return
        columns = dict(prov.columns)
        column_sources = dict(prov.column_sources or {})
        for label in labels:
            old = None if replace_old else columns.get(label, UNKNOWN)
            columns[label] = join(old, taint)
            merged = sources if replace_old else union_sources(column_sources.get(label), sources)
            if merged is None:
                column_sources.pop(label, None)
            else:
                column_sources[label] = merged
        box.prov = replace(prov, columns=columns, column_sources=column_sources)

    def state_change(self) -> None:
        if self._callback_depth:
            self._taint_run("a callback that keeps state across rows")

    # -- iteration ------------------------------------------------------------------------------------
    def getiter(self, obj: object) -> Iterator[Any]:
        if not isinstance(obj, Tracked):
            return iter(obj)  # type: ignore[call-overload,no-any-return]
        raw, prov = obj.value, obj.prov
        if isinstance(raw, pd.DataFrame) and prov.taint is None and prov.columns is not None:
            return iter(raw)  # column labels: the schema, not data
        self._taint_run("a loop over values from data (how often it runs depends on data)")
        return self._items(obj)

    def _items(self, box: Tracked) -> Iterator[Tracked]:
        item = Prov(box.prov.any_taint() or self.taint("values taken one by one from data"))
        for value in box.value:
            yield Tracked(value, item)

    def unpack(self, value: object, spec: Any, _getiter: object = None) -> Any:
        return _UNPACK(value, spec, self._unpack_iter)

    def iter_unpack(self, value: object, spec: Any, _getiter: object = None) -> Iterator[Any]:
        for item in self.getiter(value):
            yield _UNPACK(item, spec, self._unpack_iter)

    def _unpack_iter(self, value: object) -> Iterator[Any]:
        return self._items(value) if isinstance(value, Tracked) else iter(value)  # type: ignore[call-overload]

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, function: object, *args: Any, **kwargs: Any) -> Any:
        from executors.pyjobs.methods import call_function, call_method

        if isinstance(function, TrackedMethod):
            return call_method(self, function, args, kwargs)
        if isinstance(function, Tracked):
            raw_args, taint = deep_unwrap((args, kwargs))
            result = function.value(*raw_args[0], **raw_args[1])
            return Tracked(
                result,
                Prov(join(function.prov.any_taint(), taint) or self.taint("a function taken from data")),
            )
        if is_job_function(function) or isinstance(function, AggregateHook) or _hook_of(self, function):
            return function(*args, **kwargs)  # type: ignore[operator]
        return call_function(self, function, args, kwargs)

    def callback(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """A job function as pandas calls it: per row or element, with plain values; data it brings in
        from outside its row taints the method's result."""

        def per_row(*args: Any, **kwargs: Any) -> Any:
            self._callback_depth += 1
            try:
                out = function(*args, **kwargs)
            finally:
                self._callback_depth -= 1
            if is_data(out):
                raw, taint = deep_unwrap(out)
                self._callback_taint = join(
                    self._callback_taint, taint or self.taint("a callback returning data")
                )
                return raw
            return out

        return per_row

    def take_callback_taint(self) -> Taint | None:
        taint, self._callback_taint = self._callback_taint, None
        return taint

    def condition(self, box: Tracked) -> Tracked:
        """A condition (boolean series) true, or false, for fewer than k people singles them out: used as
        a filter or inside a value, it lets a result differ from another by those people only (the
        low-effect rule of Diffix). Such a condition taints what it touches. None counts as fewer than k:
        otherwise "released" (true for nobody) against "withheld" (true for one person) would itself
        answer whether that person exists."""
        sides = condition_sides(box)
        if sides is not None and min(sides) < self.min_units:
            box.prov = box.prov.tainted(
                self.taint(
                    f"a condition true or false for fewer than {self.min_units} people (it singles them out)"
                )
            )
        return box

    # -- disclosure notes -----------------------------------------------------------------------------
    def note_cells(self, what: str, units: int | None, *, extreme: bool) -> None:
        line = self.line()
        where = f"line {line}" if line is not None else "job"
        if units is not None and units < self.min_units:
            self.cell_findings.append(
                DisclosureFinding(
                    "min-units",
                    "flag",
                    f"{what} is computed from fewer than {self.min_units} units ({units})",
                    where,
                )
            )
        if extreme:
            self.cell_findings.append(
                DisclosureFinding("extreme-value", "flag", f"{what} is one unit's own value", where)
            )

    def note_groups(self, small: int | None) -> None:
        line = self.line()
        where = f"line {line}" if line is not None else "job"
        if small is None:
            self.cell_findings.append(
                DisclosureFinding(
                    "min-units", "flag", "units per group could not be counted for this groupby", where
                )
            )
        elif small:
            self.cell_findings.append(
                DisclosureFinding(
                    "min-units",
                    "flag",
                    f"{small} group(s) of this groupby have fewer than {self.min_units} units; every value "
                    "computed from them is flagged",
                    where,
                )
            )

    # -- aggregate() ----------------------------------------------------------------------------------
    def aggregate_hook(self, aggregator: Aggregator) -> AggregateHook:
        return AggregateHook(self, aggregator)

    def namespace(self) -> dict[str, Any]:
        """The hooks by the names the compiled code calls."""
        return {
            "_getattr_": self.getattr,
            "_getitem_": self.getitem,
            "_write_": self.write,
            "_getiter_": self.getiter,
            "_iter_unpack_sequence_": self.iter_unpack,
            "_unpack_sequence_": self.unpack,
            "_inplacevar_": self.inplacevar,
            "_apply_": self.call,
            "_sbx_call_": self.call,
            "_sbx_op_": self.op,
            "_sbx_chain_": self.chain,
            "_sbx_unary_": self.unary,
            "_sbx_not_": self.not_,
            "_sbx_and_": self.and_,
            "_sbx_or_": self.or_,
            "_sbx_test_": self.test,
            "_sbx_caught_": self.caught,
            "_sbx_fstr_": self.fstring,
        }


def _hook_of(tracker: Tracker, function: object) -> bool:
    """The tracker's own builtins (``getattr``, ``hasattr``): they open the boxes themselves."""
    return getattr(function, "__self__", None) is tracker


def _any(operand: object) -> Taint | None:
    return operand.prov.any_taint() if isinstance(operand, Tracked) else None


def _column_sources(operands: Sequence[object], label: object) -> frozenset[str] | None:
    parts: list[frozenset[str] | None] = []
    for operand in operands:
        if isinstance(operand, Tracked) and isinstance(operand.value, pd.DataFrame):
            parts.append(operand.prov.source_of(label))
        else:
            parts.append(sources_of(operand))
    return union_sources(*parts)


def _column_taint(operands: Sequence[object], label: object) -> Taint | None:
    taint: Taint | None = None
    for operand in operands:
        if not isinstance(operand, Tracked):
            continue
        if isinstance(operand.value, pd.DataFrame):
            taint = join(taint, operand.prov.column(label, unknown=UNKNOWN))
        else:
            taint = join(taint, operand.prov.any_taint())
    return taint


def _as_labels(key: object) -> list[object]:
    if isinstance(key, (list, tuple, pd.Index)):
        return list(key)
    return [key]
