"""The explicit allow-list of what restricted code may touch (deny by default).

Each entry names a type and the attributes (methods, properties) code may read on it or on any
subclass. Anything not listed is refused, so a new pandas or numpy release cannot widen access.
Modules are exposed only through ``ModuleRule``: a fixed set of names per module, never the module
object itself, so there is no path from ``pandas`` to ``pandas.io.common.os``.

Deliberately absent: every ``to_*`` writer except ``to_numpy``/``to_dict``/``to_list``/``to_frame``
(files, clipboard, pickles, HTML/LaTeX templating), every ``read_*``, ``eval``/``query``, ``style``,
``plot``, ``attrs``, ``flags``, ``info`` (writes to the process's stdout), ``ctypes``/``data``/``base``
of arrays (raw memory), ``np.empty`` (uninitialised memory), ``np.lib``/``np.ctypeslib``/``np.f2py``,
and global-state setters (``set_option``, ``seterr``, ``random.seed``).
"""

from __future__ import annotations

import datetime as _dt
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import typing as pdt
from pandas.core.arrays.categorical import CategoricalAccessor
from pandas.core.indexes.accessors import Properties
from pandas.core.strings.accessor import StringMethods


@dataclass(frozen=True)
class ModuleRule:
    """What ``import <module>`` exposes: plain names and allowed submodules (full dotted names)."""

    names: frozenset[str]
    submodules: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Allowlist:
    """Readable attributes by type, importable modules, and the methods whose string arguments pandas
    resolves to methods by name (``df.agg("to_csv", path)``) and which therefore get their string
    arguments checked."""

    attributes: Mapping[type, frozenset[str]]
    modules: Mapping[str, ModuleRule]
    resolves_names: frozenset[str]
    safe_function_names: frozenset[str]

    def allowed(self, kind: type) -> frozenset[str]:
        """Union of the names allowed on ``kind`` and its bases (a subclass keeps its bases' rights)."""
        names: set[str] = set()
        for base in kind.__mro__:
            names.update(self.attributes.get(base, ()))
        return frozenset(names)

    def is_known(self, kind: type) -> bool:
        return any(base in self.attributes for base in kind.__mro__ if base is not object)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Reductions and transforms pandas may look up by name; shared by frames, series, groupbys, windows.
_REDUCTIONS = _names(
    """all any count cummax cummin cumprod cumsum first idxmax idxmin kurt kurtosis last max mean median
    min mode nunique prod product quantile rank sem size skew std sum var diff pct_change shift nlargest
    nsmallest value_counts"""
)

_FRAME_AND_SERIES = (
    _names(
        """abs add agg aggregate align apply astype at axes between bfill clip combine combine_first copy
    corr count cov describe div divide dot drop drop_duplicates droplevel dropna dtypes duplicated empty
    eq equals ewm expanding explode ffill fillna filter first_valid_index floordiv ge groupby gt head iat
    iloc index infer_objects interpolate isin isna isnull items keys last_valid_index le loc lt map mask
    mod mul multiply ndim ne notna notnull pipe pow radd rdiv reindex rename rename_axis reorder_levels
    replace reset_index rfloordiv rmod rmul rolling round rpow rsub rtruediv sample set_axis shape
    sort_index sort_values squeeze sub subtract swaplevel tail take transform transpose truediv T
    truncate unstack update values where xs convert_dtypes resample asfreq to_numpy to_dict pop"""
    )
    | _REDUCTIONS
)

_FRAME = _names(
    """assign columns corrwith from_dict from_records insert iterrows itertuples join melt merge pivot
    pivot_table select_dtypes set_index stack nlargest nsmallest"""
)

_SERIES = _names(
    """name dtype str dt cat unique is_unique is_monotonic_increasing is_monotonic_decreasing hasnans
    tolist to_list to_frame argmax argmin argsort searchsorted repeat autocorr factorize item array
    between"""
)

_INDEX = _names(
    """name names nlevels levels codes shape size ndim dtype values tolist to_list to_numpy unique
    nunique isin get_level_values map astype copy sort_values min max argmin argmax rename set_names
    to_series to_frame union intersection difference symmetric_difference drop append get_loc
    is_unique is_monotonic_increasing is_monotonic_decreasing duplicated isna notna empty T
    left right mid length closed year month day hour minute second dayofweek day_of_week dayofyear
    day_of_year quarter date strftime freq days total_seconds categories droplevel value_counts
    argsort searchsorted equals where fillna dropna"""
)

_GROUPBY = (
    _names(
        """agg aggregate apply cumcount describe filter get_group groups head indices ngroup ngroups nth
    ohlc pipe tail transform corr cov"""
    )
    | _REDUCTIONS
)

_WINDOW = _names("agg aggregate apply corr cov count kurt max mean median min quantile sem skew std sum var")

_RESAMPLER = _names(
    "agg aggregate apply count first last max mean median min nunique ohlc prod quantile sem size std sum var"
)

_STRING_METHODS = _names(
    """capitalize casefold cat center contains count decode encode endswith extract extractall find
    findall fullmatch get get_dummies index isalnum isalpha isdecimal isdigit islower isnumeric isspace
    istitle isupper join len ljust lower lstrip match normalize pad partition removeprefix removesuffix
    repeat replace rfind rindex rjust rpartition rsplit rstrip slice slice_replace split startswith
    strip swapcase title translate upper wrap zfill"""
)

_DATETIME_FIELDS = _names(
    """year month day hour minute second microsecond nanosecond dayofweek day_of_week weekday dayofyear
    day_of_year quarter days_in_month daysinmonth is_leap_year is_month_start is_month_end
    is_quarter_start is_quarter_end is_year_start is_year_end date time isocalendar month_name day_name
    floor ceil round normalize strftime to_period tz tz_localize tz_convert unit as_unit days seconds
    microseconds nanoseconds components total_seconds start_time end_time to_timestamp"""
)

_CATEGORICAL = _names(
    """categories codes ordered add_categories remove_categories rename_categories reorder_categories
    set_categories remove_unused_categories as_ordered as_unordered tolist to_list unique value_counts
    isna notna astype dtype shape min max describe to_numpy"""
)

_EXTENSION_ARRAY = _names("dtype shape size ndim isna tolist to_numpy unique value_counts astype copy")

_NDARRAY = _names(
    """T all any argmax argmin argsort astype clip conj conjugate copy cumprod cumsum diagonal dot dtype
    flatten imag item itemsize max mean min nbytes ndim nonzero prod ravel real repeat reshape round
    searchsorted shape size sort squeeze std sum swapaxes take tolist trace transpose var"""
)

_DTYPE = _names("name kind itemsize char str names")

_UFUNC = _names("reduce accumulate outer at nin nout nargs")

_GENERATOR = _names(
    """integers random normal uniform choice permutation shuffle binomial poisson exponential
    standard_normal multinomial beta gamma lognormal"""
)

_PY_STR = _names(
    """capitalize casefold center count encode endswith expandtabs find format index isalnum isalpha
    isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper join
    ljust lower lstrip maketrans partition removeprefix removesuffix replace rfind rindex rjust
    rpartition rsplit rstrip split splitlines startswith strip swapcase title translate upper zfill"""
)

_PY_BYTES = _names("count decode endswith find hex join lower replace split startswith strip upper")
_PY_INT = _names("bit_length bit_count conjugate real imag numerator denominator as_integer_ratio is_integer")
_PY_FLOAT = _names("as_integer_ratio conjugate hex is_integer real imag")
_PY_COMPLEX = _names("real imag conjugate")
_PY_LIST = _names("append clear copy count extend index insert pop remove reverse sort")
_PY_TUPLE = _names("count index")
_PY_DICT = _names("clear copy fromkeys get items keys pop popitem setdefault update values")
_PY_SET = _names(
    """add clear copy difference difference_update discard intersection intersection_update isdisjoint
    issubset issuperset pop remove symmetric_difference symmetric_difference_update union update"""
)
_PY_RANGE = _names("start stop step count index")
_PY_DATE = _names(
    "year month day hour minute second microsecond isoformat strftime weekday isoweekday toordinal "
    "isocalendar date time replace days seconds microseconds total_seconds"
)
_EXCEPTION = _names("args")

_NORMAL_DIST = _names("mean median mode stdev variance cdf pdf inv_cdf overlap quantiles zscore from_samples")


#: Builtins job code may use (``getattr``, ``hasattr``, ``print`` and ``__import__`` are guarded versions
#: added by the runtime). No ``type``, ``object``, ``vars``, ``dir``, ``globals``, ``open``, ``compile``,
#: ``exec``, ``eval``, ``setattr``, ``exit`` or ``BaseException``.
BUILTIN_NAMES = _names(
    """abs all any bool callable chr dict divmod enumerate filter float format frozenset int isinstance
    issubclass iter len list map max min next ord pow range repr reversed round set slice sorted str
    sum tuple zip ArithmeticError AssertionError AttributeError Exception IndexError KeyError
    LookupError NameError NotImplementedError OverflowError RuntimeError StopIteration TypeError
    ValueError ZeroDivisionError"""
)


def _module_rules() -> dict[str, ModuleRule]:
    pandas_names = _names(
        """DataFrame Series Index MultiIndex Categorical CategoricalDtype Timestamp Timedelta Period
        Interval NA NaT concat merge merge_asof cut qcut crosstab pivot_table melt get_dummies
        to_numeric to_datetime to_timedelta isna isnull notna notnull unique value_counts date_range
        period_range timedelta_range interval_range factorize wide_to_long NamedAgg Grouper"""
    )
    numpy_names = _names(
        """array asarray arange linspace zeros ones full zeros_like ones_like full_like eye identity
        diag concatenate stack vstack hstack column_stack reshape transpose where select clip abs
        absolute sqrt exp log log1p log2 log10 sin cos tan arcsin arccos arctan power square sign
        floor ceil round rint trunc sum nansum mean nanmean median nanmedian std nanstd var nanvar
        min max amin amax nanmin nanmax argmin argmax argsort sort unique cumsum cumprod prod
        percentile nanpercentile quantile nanquantile histogram histogram_bin_edges bincount digitize
        searchsorted corrcoef cov dot matmul outer inner cross isnan isinf isfinite isclose allclose
        array_equal logical_and logical_or logical_not logical_xor maximum minimum add subtract
        multiply divide true_divide floor_divide mod count_nonzero nonzero polyfit polyval interp diff
        average ptp repeat tile meshgrid ravel squeeze expand_dims atleast_1d atleast_2d vander
        nan inf pi e newaxis float64 float32 int64 int32 int16 int8 uint8 bool_ str_ datetime64
        timedelta64 integer floating number issubdtype linalg random"""
    )
    linalg_names = _names(
        "lstsq inv pinv solve det norm eig eigh eigvals eigvalsh svd qr cholesky matrix_rank LinAlgError"
    )
    math_names = _names(
        """acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist e erf
        erfc exp exp2 expm1 fabs factorial floor fmod frexp fsum gamma gcd hypot inf isclose isfinite
        isinf isnan isqrt lcm ldexp lgamma log log10 log1p log2 modf nan nextafter perm pi pow prod
        radians remainder sin sinh sqrt sumprod tan tanh tau trunc ulp"""
    )
    statistics_names = _names(
        """correlation covariance fmean geometric_mean harmonic_mean linear_regression mean median
        median_grouped median_high median_low mode multimode NormalDist pstdev pvariance quantiles
        stdev variance StatisticsError"""
    )
    return {
        "pandas": ModuleRule(pandas_names),
        "numpy": ModuleRule(numpy_names, frozenset({"numpy.linalg", "numpy.random"})),
        "numpy.linalg": ModuleRule(linalg_names),
        "numpy.random": ModuleRule(_names("default_rng")),
        "math": ModuleRule(math_names),
        "statistics": ModuleRule(statistics_names),
    }


def _attribute_rules() -> dict[type, frozenset[str]]:
    return {
        pd.DataFrame: _FRAME_AND_SERIES | _FRAME,
        pd.Series: _FRAME_AND_SERIES | _SERIES,
        pd.Index: _INDEX,
        pdt.DataFrameGroupBy: _GROUPBY,
        pdt.SeriesGroupBy: _GROUPBY | _names("unique is_monotonic_increasing is_monotonic_decreasing"),
        pdt.Rolling: _WINDOW,
        pdt.Expanding: _WINDOW,
        pdt.ExponentialMovingWindow: _names("mean std var sum corr cov"),
        pdt.Resampler: _RESAMPLER,
        StringMethods: _STRING_METHODS,
        Properties: _DATETIME_FIELDS,
        CategoricalAccessor: _CATEGORICAL,
        pd.Categorical: _CATEGORICAL,
        pd.api.extensions.ExtensionArray: _EXTENSION_ARRAY,
        pd.Timestamp: _DATETIME_FIELDS | _PY_DATE | _names("isoformat timestamp"),
        pd.Timedelta: _DATETIME_FIELDS,
        pd.Period: _DATETIME_FIELDS | _names("freqstr"),
        pd.Interval: _names("left right mid length closed overlaps"),
        np.ndarray: _NDARRAY,
        np.generic: _NDARRAY,
        np.dtype: _DTYPE,
        pd.CategoricalDtype: _names("categories ordered name"),
        pd.api.extensions.ExtensionDtype: _names("name kind"),
        np.ufunc: _UFUNC,
        np.random.Generator: _GENERATOR,
        statistics.NormalDist: _NORMAL_DIST,
        str: _PY_STR,
        bytes: _PY_BYTES,
        int: _PY_INT,
        float: _PY_FLOAT,
        complex: _PY_COMPLEX,
        list: _PY_LIST,
        tuple: _PY_TUPLE,
        dict: _PY_DICT,
        set: _PY_SET,
        frozenset: _PY_SET,
        range: _PY_RANGE,
        slice: _names("start stop step"),
        _dt.date: _PY_DATE,
        _dt.time: _PY_DATE,
        _dt.timedelta: _PY_DATE,
        BaseException: _EXCEPTION,
    }


def build_allowlist() -> Allowlist:
    """The allow-list for this pandas/numpy; built per job (cheap) rather than at import time.

    >>> rules = build_allowlist()
    >>> "to_csv" in rules.allowed(pd.DataFrame), "groupby" in rules.allowed(pd.DataFrame)
    (False, True)
    """
    return Allowlist(
        attributes=_attribute_rules(),
        modules=_module_rules(),
        resolves_names=_names("agg aggregate apply transform map pipe pivot_table crosstab resample filter"),
        safe_function_names=_REDUCTIONS | _names("size mean sum count ohlc first last"),
    )
