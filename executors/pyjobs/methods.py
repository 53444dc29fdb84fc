"""Provenance of method and function calls on tracked values (the call hook's rules).

A method of a frame or series is row-local when ``rules`` lists it as element-wise or row-keeping
and its arguments line up with the receiver's rows (or are constants of the code); ``map`` and
``apply(axis=1)`` are row-local when the job's function brings in no data from outside its row.
``merge`` is row-local on the unit, or with a lookup table that holds no people's rows.
``assign`` and ``pipe`` call the job's functions with the tracked frame itself. Every other method,
and every library function given data (except element-wise numpy and pandas functions), taints its
result with its own name. Reductions are also counted for the report: how many units are behind
the value, and whether it is one unit's own value (min, max, ...).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from executors.pyjobs import rules
from executors.pyjobs.taint import (
    ACCESSORS,
    UNKNOWN,
    Prov,
    RowSpace,
    Taint,
    Tracked,
    TrackedMethod,
    deep_unwrap,
    is_data,
    join,
    positions_of,
    sources_of,
    union_sources,
)
from executors.pyjobs.units import small_groups, units_behind

if TYPE_CHECKING:
    from executors.pyjobs.tracking import Tracker

_PANDAS = (pd.DataFrame, pd.Series)
_CONTAINERS = (list, dict, set)


def call_method(
    tracker: Tracker, method: TrackedMethod, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    box, name = method.receiver, method.name
    raw = box.value
    if isinstance(raw, _PANDAS):
        return _frame_method(tracker, box, name, method.value, args, dict(kwargs))
    if isinstance(raw, ACCESSORS) and name not in rules.ACCESSOR_CROSS_ROW:
        return _row_local(tracker, box, name, method.value, args, dict(kwargs), aligned=False)
    result, taint, _raw_args = _invoke(tracker, method.value, args, kwargs)
    if name in rules.REDUCTIONS:
        tracker.note_cells(f".{name}", None, extreme=name in rules.EXTREMES)
    if result is None or result is raw:
        # Changed in place (a sort, an update): what it holds now depends on whatever was done.
        box.prov = box.prov.tainted(join(taint, tracker.taint(f".{name} (changed in place)")))
        return None if result is None else box
    return Tracked(result, Prov(join(box.prov.any_taint(), taint) or tracker.taint(f".{name}")))


def call_function(tracker: Tracker, function: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """A function that is not the job's own: a builtin, a library function, a plain value's method."""
    from executors.pyjobs.tracking import function_name

    owner = getattr(function, "__self__", None)
    if isinstance(owner, _CONTAINERS) and getattr(function, "__name__", "") in rules.MUTATORS:
        tracker.state_change()
        if not (is_data(args) or is_data(kwargs)):
            return function(*args, **kwargs)
        result = function(*args, **kwargs)  # boxes are stored as they are: the container keeps them
        return (
            None if result is None or result is owner else _boxed(tracker, result, args, kwargs, "a lookup")
        )
    if not (is_data(args) or is_data(kwargs)):
        return function(*args, **kwargs)
    if isinstance(function, type) and issubclass(function, BaseException):
        (raw_args, raw_kwargs), _ = deep_unwrap((list(args), dict(kwargs)))
        return function(*raw_args, **raw_kwargs)  # raised, never shown: errors are reduced to type and line
    if isinstance(owner, (*_CONTAINERS, str, tuple, frozenset)):
        raw_args, _ = deep_unwrap((list(args), dict(kwargs)))
        return _boxed(tracker, function(*raw_args[0], **raw_args[1]), args, kwargs, f".{function.__name__}")
    name = function_name(function)
    if name == "pandas.merge" and len(args) >= 2:
        return _merge(tracker, args[0], args[1], dict(kwargs))
    for target in _outputs(kwargs):
        target.prov = target.prov.tainted(tracker.taint(f"{name} writing into an existing array"))
    if "out" in kwargs:
        pass  # results written in place: the generic rule below taints them
    elif (
        isinstance(function, np.ufunc) or name in _ELEMENTWISE_FUNCTIONS or _is_fixed_cut(name, args, kwargs)
    ):
        raw_args, _ = deep_unwrap((list(args), dict(kwargs)))
        result = function(*raw_args[0], **raw_args[1])
        operands = [*args, *kwargs.values()]
        if name == "numpy.select":  # lists of conditions and of choices: each element is an operand
            operands = [o for a in operands for o in (a if isinstance(a, list) else [a])]
        if name.startswith("pandas."):
            # Lists given to pandas' element-wise functions are parameters (bin edges, labels, formats),
            # not values lined up with rows; numpy's operands are.
            operands = [o for o in operands if is_data(o)]
        return tracker.combine(result, operands, what=name)
    result, taint, _raw_args = _invoke(tracker, function, args, kwargs)
    counted = [units_behind(a) for a in (*args, *kwargs.values()) if _has_rows(a)]
    if counted:
        known = [n for n in counted if n is not None]
        tracker.note_cells(name, min(known) if known else None, extreme=name in _EXTREME_FUNCTIONS)
    return Tracked(result, Prov(taint or tracker.taint(name)))


_EXTREME_FUNCTIONS = frozenset(
    [
        "max",
        "min",
        "sorted",
        "numpy.max",
        "numpy.min",
        "numpy.amax",
        "numpy.amin",
        "numpy.nanmax",
        "numpy.nanmin",
        "numpy.sort",
        "numpy.ptp",
        "numpy.percentile",
        "numpy.quantile",
        "numpy.nanpercentile",
        "numpy.nanquantile",
    ]
)


def _has_rows(value: object) -> bool:
    """A tracked frame, series or positional array: its rows (and their units) are known."""
    return isinstance(value, Tracked) and value.prov.rows is not None


_ELEMENTWISE_FUNCTIONS = frozenset(
    {f"numpy.{n}" for n in rules.NUMPY_ELEMENTWISE} | {f"pandas.{n}" for n in rules.PANDAS_ELEMENTWISE}
)


def _outputs(kwargs: Mapping[str, Any]) -> list[Tracked]:
    out = kwargs.get("out")
    targets = out if isinstance(out, tuple) else (out,)
    return [t for t in targets if isinstance(t, Tracked)]


def _is_fixed_cut(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """``pd.cut`` with bin edges written in the code is element-wise; with a number of bins, the edges
    come from the data's range."""
    if name != "pandas.cut":
        return False
    bins = kwargs.get("bins", args[1] if len(args) > 1 else None)
    return isinstance(bins, (list, tuple)) and not is_data(bins)


def _boxed(tracker: Tracker, result: Any, args: Any, kwargs: Any, what: str) -> Tracked:
    taint = join(deep_unwrap(args)[1], deep_unwrap(kwargs)[1])
    return Tracked(deep_unwrap(result)[0], Prov(join(taint, deep_unwrap(result)[1]) or tracker.taint(what)))


def _plain_arguments(
    tracker: Tracker, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[list[Any], dict[str, Any]], Taint | None]:
    """Arguments opened for a library call; the job's functions among them run as callbacks."""
    args = [tracker.callback(a) if _job_function(a) else a for a in args]
    kwargs = {k: tracker.callback(v) if _job_function(v) else v for k, v in kwargs.items()}
    (raw_args, raw_kwargs), taint = deep_unwrap((args, kwargs))
    return (list(raw_args), dict(raw_kwargs)), taint


def _invoke(
    tracker: Tracker, function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[Any, Taint | None, tuple[list[Any], dict[str, Any]]]:
    """Call ``function`` with the arguments opened; its result, the taint of the arguments and of
    what the job's callbacks brought in, and the opened arguments."""
    tracker.take_callback_taint()
    raw_args, taint = _plain_arguments(tracker, args, kwargs)
    result = function(*raw_args[0], **raw_args[1])
    return result, join(taint, tracker.take_callback_taint()), raw_args


def _job_function(value: object) -> bool:
    from executors.pyjobs.tracking import is_job_function

    return is_job_function(value)


def _frame_method(
    tracker: Tracker,
    box: Tracked,
    name: str,
    method: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Any:
    raw: pd.DataFrame | pd.Series = box.value
    if name == "pipe" and args:
        return tracker.call(args[0], box, *args[1:], **kwargs)
    if name == "assign" and not args:
        return _assign(tracker, box, kwargs)
    if name == "merge" and (args or "right" in kwargs):
        right = args[0] if args else kwargs.pop("right")
        return _merge(tracker, box, right, kwargs)
    if name == "groupby":
        return _groupby(tracker, box, method, args, kwargs)
    if (
        name == "items"
        and isinstance(raw, pd.DataFrame)
        and box.prov.taint is None
        and box.prov.columns is not None
    ):
        # A loop over the columns of a frame: the labels are the schema, each column keeps its own taint.
        return [(label, tracker.getitem(box, label)) for label in raw.columns]
    if name in rules.POSITIONAL:
        result, taint, _ = _invoke(tracker, method, args, kwargs)
        return Tracked(result, Prov(join(box.prov.any_taint(), taint), box.prov.rows, raw.index))
    if name in {"reset_index", "set_index"} and not kwargs.get("inplace"):
        return _rekeyed(tracker, box, name, method, args, kwargs)
    per_element = name in rules.PER_ELEMENT_CALLBACKS and _per_element(raw, name, args, kwargs)
    if name in rules.ELEMENTWISE or per_element:
        return _row_local(tracker, box, name, method, args, kwargs, aligned=name in rules.ALIGNED_ARGUMENTS)
    if name in rules.ROW_SUBSET:
        return _row_subset(tracker, box, name, method, args, kwargs)
    result, taint, _raw_args = _invoke(tracker, method, args, kwargs)
    if name in rules.REDUCTIONS:
        tracker.note_cells(f".{name}", units_behind(box), extreme=name in rules.EXTREMES)
    taint = join(box.prov.any_taint(), taint) or tracker.taint(f".{name}")
    if kwargs.get("inplace") or result is None or result is raw:
        # Changed in place (``update``, ``insert``, ``inplace=True``): the whole frame is suspect.
        box.prov = box.prov.tainted(taint)
        return None if result is None else box
    return Tracked(result, Prov(taint))


def _per_element(
    raw: pd.DataFrame | pd.Series, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> bool:
    """``map`` calls its function per element; ``apply`` per element of a series, per row of a frame
    only with ``axis=1``. The function must be one pandas calls that way: the job's own, a lookup
    written in the code (a dict), a numpy ufunc or a builtin. A name (``'cumsum'``) or another library
    function may be given the whole column instead."""
    function = args[0] if args else kwargs.get("func", kwargs.get("arg"))
    if not _called_per_element(function):
        return False
    if name == "apply" and isinstance(raw, pd.DataFrame):
        return kwargs.get("axis", args[1] if len(args) > 1 else 0) in (1, "columns")
    if name == "apply":
        return kwargs.get("by_row", "compat") == "compat" and len(args) <= 1 and "args" not in kwargs
    return True


def _called_per_element(function: object) -> bool:
    if isinstance(function, Tracked):
        return False
    if _job_function(function) or isinstance(function, np.ufunc):
        return True
    if isinstance(function, dict):
        return not is_data(function)
    return isinstance(function, (types.BuiltinFunctionType, types.MethodDescriptorType)) and getattr(
        function, "__module__", "builtins"
    ) in (None, "builtins")


def _row_local(
    tracker: Tracker,
    box: Tracked,
    name: str,
    method: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    aligned: bool,
) -> Any:
    operands = [*args, *kwargs.values()]
    taint: Taint | None = None
    if name not in rules.PER_ELEMENT_CALLBACKS and any(_job_function(o) for o in operands):
        taint = tracker.taint(f".{name} with a function (it is given the whole column)")
    for operand in operands:
        if aligned:
            taint = join(
                taint, tracker.misaligned(box.prov.rows, positions_of(box), operand), deep_unwrap(operand)[1]
            )
        elif is_data(operand):
            taint = join(
                taint, deep_unwrap(operand)[1] or tracker.taint(f".{name} with values taken from data")
            )
    result, callback_taint, _raw_args = _invoke(tracker, method, args, kwargs)
    taint = join(taint, callback_taint)
    if kwargs.get("inplace"):
        box.prov = box.prov.tainted(taint)
        return None
    extra = union_sources(*(sources_of(o) for o in operands)) if aligned else frozenset()
    whole_row = name == "apply" and isinstance(box.value, pd.DataFrame)
    return _like(tracker, box, result, taint, extra_sources=extra, whole_row=whole_row)


def _like(
    tracker: Tracker,
    box: Tracked,
    result: Any,
    taint: Taint | None,
    *,
    renamed_from: list[object] | None = None,
    extra_sources: frozenset[str] | None = frozenset(),
    whole_row: bool = False,
) -> Any:
    """``result`` holds ``box``'s rows (or some of them): same space, columns keep their taint and
    their sources (plus ``extra_sources``, the sources of the arguments that line up with the rows)."""

    prov = box.prov
    if isinstance(result, pd.DataFrame):
        columns: dict[Any, Taint | None] | None
        sources: dict[Any, frozenset[str] | None]
        if prov.columns is None:
            columns, sources = None, {}
        elif renamed_from is not None and len(renamed_from) == len(result.columns):
            pairs = list(zip(renamed_from, result.columns, strict=True))
            columns = {new: prov.columns.get(old) for old, new in pairs}
            sources = {new: prov.source_of(old) for old, new in pairs}
        elif not isinstance(box.value, pd.DataFrame):
            columns = dict.fromkeys(result.columns, prov.taint)
            sources = dict.fromkeys(result.columns, prov.sources)
        elif whole_row:  # a function of each whole row: every column may hold any of the row's values
            columns = dict.fromkeys(result.columns, prov.any_taint())
            sources = dict.fromkeys(result.columns, _all_sources(prov, box.value))
        else:
            columns = {c: prov.columns.get(c, UNKNOWN) for c in result.columns}
            sources = {c: prov.source_of(c) for c in result.columns}
        merged = {c: union_sources(v, extra_sources) for c, v in sources.items()}
        known = {c: v for c, v in merged.items() if v is not None}
        own = join(prov.taint, taint) if isinstance(box.value, pd.DataFrame) else taint
        return Tracked(result, Prov(own, prov.rows, None, columns, column_sources=known))
    if isinstance(result, pd.Series):
        if not isinstance(box.value, pd.DataFrame):
            own, own_sources = prov.taint, prov.sources
        else:
            own, own_sources = prov.any_taint(), _all_sources(prov, box.value)
        sources_ = union_sources(own_sources, extra_sources)
        return tracker.condition(Tracked(result, Prov(join(own, taint), prov.rows, sources=sources_)))
    if isinstance(result, np.ndarray) and result.ndim >= 1:
        return Tracked(result, Prov(join(prov.any_taint(), taint), prov.rows, box.value.index))
    if result is None:
        return None
    return Tracked(result, Prov(join(prov.any_taint(), taint) or tracker.taint("a value taken from data")))


def _all_sources(prov: Prov, frame: pd.DataFrame) -> frozenset[str] | None:
    """Sources of a value computed from a whole row of ``frame`` (every column)."""
    return union_sources(*(prov.source_of(c) for c in frame.columns))


def _row_subset(
    tracker: Tracker,
    box: Tracked,
    name: str,
    method: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Any:
    raw = box.value
    if kwargs.get("inplace"):
        before: list[object] | None = list(raw.columns) if isinstance(raw, pd.DataFrame) else None
        rows_before = len(raw)
        _, taint, raw_args = _invoke(tracker, method, args, kwargs)
        reason = _subset_taint(tracker, name, raw, raw, rows_before, before, raw_args)
        renamed = _like(
            tracker, box, raw, join(taint, reason), renamed_from=before if name.startswith("rename") else None
        )
        box.prov = renamed.prov
        return None
    result, taint, raw_args = _invoke(tracker, method, args, kwargs)
    before = list(raw.columns) if isinstance(raw, pd.DataFrame) else None
    reason = _subset_taint(tracker, name, raw, result, len(raw), before, raw_args)
    return _like(
        tracker, box, result, join(taint, reason), renamed_from=before if name.startswith("rename") else None
    )


def _subset_taint(
    tracker: Tracker,
    name: str,
    raw: pd.DataFrame | pd.Series,
    result: object,
    rows_before: int,
    columns_before: list[object] | None,
    raw_args: tuple[list[Any], dict[str, Any]],
) -> Taint | None:
    """Why a row-keeping method did not only keep rows by their own values (None when it did)."""
    if not isinstance(result, _PANDAS):
        return tracker.taint(f".{name}")
    if name == "drop_duplicates":
        subset = raw_args[1].get("subset", raw_args[0][0] if raw_args[0] else None)
        keys = (
            [subset]
            if isinstance(subset, str)
            else list(subset)
            if subset is not None
            else list(getattr(raw, "columns", []))
        )
        if tracker.unit not in keys:
            return tracker.taint(
                ".drop_duplicates (which row of several people is kept depends on the others)"
            )
    dropped_columns = isinstance(result, pd.DataFrame) and list(result.columns) != columns_before
    if name == "dropna" and columns_before is not None and dropped_columns:
        return tracker.taint(".dropna of columns (depends on every row)")
    if name in {"drop", "filter", "rename", "rename_axis", "select_dtypes"} and len(result) != rows_before:
        return tracker.taint(f".{name} of rows chosen by label")
    return None


def _assign(tracker: Tracker, box: Tracked, kwargs: Mapping[str, Any]) -> Tracked:
    """``df.assign(x=...)``: a copy with columns set one by one; a function gets the tracked copy."""
    copy = Tracked(box.value.copy(deep=False), box.prov)
    for label, value in kwargs.items():
        if callable(value) and not isinstance(value, Tracked):
            value = tracker.call(value, copy)
        tracker.set_column(copy, label, value)
    return copy


def _rekeyed(
    tracker: Tracker,
    box: Tracked,
    name: str,
    method: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Tracked:
    """``reset_index``/``set_index``: the same rows under new labels, so a new row space (the unit of
    each row carried over); a former index turned into a column is positional."""
    raw = box.value
    result, taint, _raw_args = _invoke(tracker, method, args, kwargs)
    prov = box.prov
    units = prov.rows.units if prov.rows is not None else None
    new_units = None
    if units is not None:
        new_units = pd.Series(units.reindex(raw.index).to_numpy(), index=result.index)
    people = prov.rows.people if prov.rows is not None else True
    space = RowSpace(f"{name} rows", people=people, units=new_units)
    if not result.index.is_unique:
        taint = join(taint, tracker.taint(f".{name} (labels that are not unique)"))
    if isinstance(result, pd.Series):
        return Tracked(result, Prov(join(prov.taint, taint), space))

    source = dict(prov.columns) if prov.columns is not None else {}
    if name == "reset_index":
        added = [c for c in result.columns if c not in source]
        for column in added:
            source[column] = tracker.taint(".reset_index (row labels turned into a column)")
    columns = {c: source.get(c, UNKNOWN) for c in result.columns} if prov.columns is not None else None
    column_sources = prov.sources_for(result.columns)
    own = join(prov.taint if isinstance(raw, pd.DataFrame) else None, taint)
    return Tracked(result, Prov(own, space, None, columns, column_sources=column_sources))


def _merge(tracker: Tracker, left: object, right: object, kwargs: dict[str, Any]) -> Tracked:
    """A merge is row-local on the unit (each row joins the same person's rows), or with a table that
    holds no people's rows (a lookup: regions, code lists); any other key combines people."""

    raw_left, raw_right = deep_unwrap(left)[0], deep_unwrap(right)[0]
    raw_kwargs, kw_taint = deep_unwrap(kwargs)
    result: pd.DataFrame = pd.merge(raw_left, raw_right, **raw_kwargs)
    left_prov = left.prov if isinstance(left, Tracked) else None
    right_prov = right.prov if isinstance(right, Tracked) else None
    keys = _merge_keys(raw_kwargs, raw_left, raw_right)
    left_people = _holds_people(left_prov)
    right_people = _holds_people(right_prov)
    # What the sides already carried comes first: it is the root cause.
    taint = join(kw_taint, left_prov.taint if left_prov else None, right_prov.taint if right_prov else None)
    if left_people and right_people and tracker.unit not in keys:
        taint = join(
            taint, tracker.taint(".merge on a key other than the unit (rows of different people combined)")
        )
    if raw_kwargs.get("left_index") or raw_kwargs.get("right_index"):
        taint = join(taint, tracker.taint(".merge on row labels"))
    suffixes = raw_kwargs.get("suffixes", ("_x", "_y"))
    columns: dict[object, Taint | None] = {}
    for column in result.columns:
        columns[column] = _merged_column(
            column, raw_left, raw_right, left_prov, right_prov, suffixes, unknown=UNKNOWN
        )
    units = result[tracker.unit] if tracker.unit in result.columns else None
    space = RowSpace("merged rows", people=left_people or right_people, units=units)
    sources = _merged_sources(
        result, raw_left, raw_right, left_prov, right_prov, keys, on_unit=tracker.unit in keys
    )
    return Tracked(result, Prov(taint, space, None, columns, column_sources=sources))


def _merged_sources(
    result: pd.DataFrame,
    left: pd.DataFrame,
    right: pd.DataFrame,
    left_prov: Prov | None,
    right_prov: Prov | None,
    keys: set[object],
    *,
    on_unit: bool,
) -> dict[Any, frozenset[str]]:
    """Input columns behind each merged column. Off the unit, a looked-up value also depends on the
    key it was looked up by."""

    def source(prov: Prov | None, label: object) -> frozenset[str] | None:
        return frozenset() if prov is None else prov.source_of(label)

    by_key = (
        frozenset()
        if on_unit
        else union_sources(*(source(left_prov, k) for k in keys), *(source(right_prov, k) for k in keys))
    )
    out: dict[Any, frozenset[str]] = {}
    for column in result.columns:
        if column in left.columns and column not in right.columns:
            found = source(left_prov, column)
        elif column in right.columns and column not in left.columns:
            found = union_sources(source(right_prov, column), by_key)
        elif column in keys:
            found = union_sources(source(left_prov, column), source(right_prov, column))
        else:
            found = None  # suffixed duplicates: not traced
        if found is not None:
            out[column] = found
    return out


def _merge_keys(kwargs: Mapping[str, Any], left: pd.DataFrame, right: pd.DataFrame) -> set[object]:
    on = kwargs.get("on")
    if on is None and "left_on" not in kwargs and "right_on" not in kwargs:
        return set[object](left.columns) & set[object](right.columns)
    if on is not None:
        return set([on] if isinstance(on, str) else on)
    left_on, right_on = kwargs.get("left_on"), kwargs.get("right_on")
    left_keys = set([left_on] if isinstance(left_on, str) else left_on or [])
    right_keys = set([right_on] if isinstance(right_on, str) else right_on or [])
    return left_keys & right_keys


def _holds_people(prov: Prov | None) -> bool:
    if prov is None:
        return False  # a frame built from the code's own constants
    return prov.rows is None or prov.rows.people


def _merged_column(
    column: object,
    left: pd.DataFrame,
    right: pd.DataFrame,
    left_prov: Prov | None,
    right_prov: Prov | None,
    suffixes: Sequence[str | None],
    *,
    unknown: Taint,
) -> Taint | None:
    def side(prov: Prov | None, label: object) -> Taint | None:
        return None if prov is None else prov.column(label, unknown=unknown)

    in_left, in_right = column in left.columns, column in right.columns
    if in_left and in_right:
        return join(side(left_prov, column), side(right_prov, column))
    if in_left:
        return side(left_prov, column)
    if in_right:
        return side(right_prov, column)
    text = str(column)
    for suffix, frame, prov in ((suffixes[0], left, left_prov), (suffixes[1], right, right_prov)):
        if suffix and text.endswith(suffix) and text[: -len(suffix)] in frame.columns:
            return side(prov, text[: -len(suffix)])
    return unknown


def _groupby(
    tracker: Tracker, box: Tracked, method: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
) -> Tracked:
    """Every value computed from a groupby depends on the other rows of its group; the groups below k
    units are counted for the report here, where the rows and their units are known."""
    grouped, taint, raw_args = _invoke(tracker, method, args, kwargs)
    by = raw_args[1].get("by", raw_args[0][0] if raw_args[0] else None)
    tracker.note_groups(small_groups(box, by, min_units=tracker.min_units))
    return Tracked(grouped, Prov(join(box.prov.any_taint(), taint) or tracker.taint("groupby")))
