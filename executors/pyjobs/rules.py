"""Which operations keep a value row-local, by name. Anything not named here taints (fail closed).

Row-local means: every row of the result is computed from the same row of the operand (and from
constants of the job's code), so it still belongs to that row's person. Reductions, sorting of
values, positional access, windows, group transforms, fan-out merges and everything else that lets
one row's result depend on another row are left out on purpose.
"""

from __future__ import annotations


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Methods of frames and series that act element by element, keeping each row's index label.
ELEMENTWISE = _names(
    """abs add sub subtract mul multiply div divide truediv floordiv mod pow radd rsub rmul rdiv
    rtruediv rfloordiv rmod rpow eq ne lt le gt ge round clip astype isna isnull notna notnull isin
    between where mask fillna replace copy convert_dtypes infer_objects combine_first"""
)

#: Of those, the ones whose arguments line up with the rows (a list there is taken by position).
ALIGNED_ARGUMENTS = _names(
    """add sub subtract mul multiply div divide truediv floordiv mod pow radd rsub rmul rdiv rtruediv
    rfloordiv rmod rpow eq ne lt le gt ge where mask combine_first clip"""
)

#: Methods that keep whole rows (a subset, a new order, or the same rows with columns chosen).
ROW_SUBSET = _names(
    "sort_values sort_index drop filter select_dtypes dropna rename rename_axis drop_duplicates"
)

#: Methods of the ``.str``, ``.dt`` and ``.cat`` accessors that are not element-wise (everything else
#: on an accessor is).
ACCESSOR_CROSS_ROW = _names("cat get_dummies categories codes remove_unused_categories value_counts unique")

#: Methods that call a function of the job once per element (``map``) or per row (``apply`` with
#: ``axis=1``); the function sees one row's values only.
PER_ELEMENT_CALLBACKS = _names("map apply")

#: Methods that turn a frame or series into a positional array aligned with its rows.
POSITIONAL = _names("to_numpy")

#: Reductions whose result is computed from the units behind it (checked against k for the report).
REDUCTIONS = _names(
    """count sum mean median min max std var sem skew kurt kurtosis prod product quantile nunique
    describe value_counts mode idxmax idxmin agg aggregate size first last nlargest nsmallest"""
)

#: Reductions whose value is one unit's own value.
EXTREMES = _names("min max idxmin idxmax nlargest nsmallest first last")

#: Properties that describe a frame's schema (no data) when the frame's columns are known.
SCHEMA_PROPERTIES = _names("columns name dtype dtypes ndim")

#: numpy functions (besides ufuncs, which are all element-wise) that act element by element.
NUMPY_ELEMENTWISE = _names("where select clip round around isnan isfinite isinf nan_to_num")

#: pandas functions that act element by element.
PANDAS_ELEMENTWISE = _names("to_datetime to_numeric to_timedelta isna isnull notna notnull")

#: Methods of Python containers that change them (inside a callback: state carried across rows).
MUTATORS = _names(
    """append extend insert pop remove clear sort reverse update setdefault popitem add discard
    difference_update intersection_update symmetric_difference_update"""
)
