"""The guards RestrictedPython calls instead of plain attribute, item, write and import operations.

RestrictedPython only rewrites syntax (``a.b`` becomes ``_getattr_(a, "b")``); what is actually
allowed is decided here, against the allow-list. A refusal raises :class:`GuardDenied`, which derives
from ``BaseException``: job code can only name ``Exception`` subclasses and bare ``except:`` is
rejected at compile time, so a refusal cannot be swallowed. The first refusal is also recorded in
:class:`RunState`, so even a refusal lost in a ``finally`` fails the job.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import typing as pdt
from pandas.core.indexing import _AtIndexer, _iAtIndexer, _iLocIndexer, _LocIndexer

from executors.pyjobs.allowlist import Allowlist, ModuleRule

#: Why well-known names are refused, so the error tells the author what to do instead.
_REASONS: Mapping[str, str] = {
    "eval": "string evaluation is not allowed; use ordinary expressions",
    "query": "string evaluation is not allowed; use boolean masks such as df[df['x'] > 1]",
    "style": "styling and templating are not available",
    "attrs": "free-form metadata is not available",
    "plot": "plotting is not available in the sandbox",
    "info": "info() writes to the process output; use dtypes, shape and describe()",
}


class GuardDenied(BaseException):
    """A guard refused an operation; the message is written by this module and carries no data."""


@dataclass(frozen=True)
class ModelFit:
    """One model fitted by the job: observations, parameters, and the residual degrees of freedom."""

    function: str
    n_obs: int
    n_params: int

    @property
    def residual_df(self) -> int:
        return self.n_obs - self.n_params


@dataclass
class RunState:
    """Mutable state of one job run (never shared between runs)."""

    violation: str | None = None
    model_fits: list[ModelFit] = field(default_factory=list)


def _is_pandas_type(kind: type) -> bool:
    return kind.__module__.split(".")[0] == "pandas"


class ModuleView:
    """What ``import pandas`` gives a job: the allowed names of the module, never the module itself."""

    __slots__ = ("_sbx_guards", "_sbx_module", "_sbx_name", "_sbx_rule")

    def __init__(self, name: str, module: ModuleType, rule: ModuleRule, guards: Guards) -> None:
        object.__setattr__(self, "_sbx_name", name)
        object.__setattr__(self, "_sbx_module", module)
        object.__setattr__(self, "_sbx_rule", rule)
        object.__setattr__(self, "_sbx_guards", guards)

    def __getattr__(self, name: str) -> Any:
        # Also reached by ``from pandas import x``, which does not go through ``_getattr_``.
        guards: Guards = object.__getattribute__(self, "_sbx_guards")
        return guards.module_attribute(self, name)

    def __setattr__(self, name: str, value: object) -> None:
        raise GuardDenied("modules cannot be modified")

    def __delattr__(self, name: str) -> None:
        raise GuardDenied("modules cannot be modified")

    def __repr__(self) -> str:
        return f"<module {object.__getattribute__(self, '_sbx_name')!r} (sandboxed)>"


class _FrameWriter:
    """Write proxy for ``df[col] = v``, ``df.columns = [...]``: the unit column stays read-only."""

    __slots__ = ("_sbx_guards", "_sbx_target")

    def __init__(self, target: pd.DataFrame | pd.Series, guards: Guards) -> None:
        object.__setattr__(self, "_sbx_target", target)
        object.__setattr__(self, "_sbx_guards", guards)

    def __setitem__(self, key: object, value: object) -> None:
        target = object.__getattribute__(self, "_sbx_target")
        guards: Guards = object.__getattribute__(self, "_sbx_guards")
        if isinstance(target, pd.DataFrame):
            guards.refuse_unit_labels(_labels(key))
        target[key] = value

    def __delitem__(self, key: object) -> None:
        target = object.__getattribute__(self, "_sbx_target")
        del target[key]

    def __setattr__(self, name: str, value: object) -> None:
        target = object.__getattribute__(self, "_sbx_target")
        guards: Guards = object.__getattribute__(self, "_sbx_guards")
        if name not in {"columns", "index", "name", "names"}:
            raise GuardDenied(f"setting {guards.shown(name)} on {type(target).__name__} is not allowed")
        if name == "columns" and isinstance(target, pd.DataFrame):
            before = set(map(str, target.columns))
            guards.refuse_unit_labels([c for c in _labels(value) if str(c) not in before])
        setattr(target, name, value)


class _IndexerWriter:
    """Write proxy for ``df.loc[...] = v`` and friends, refusing writes into the unit column."""

    __slots__ = ("_sbx_guards", "_sbx_target")

    def __init__(self, target: Any, guards: Guards) -> None:
        object.__setattr__(self, "_sbx_target", target)
        object.__setattr__(self, "_sbx_guards", guards)

    def __setitem__(self, key: object, value: object) -> None:
        target = object.__getattribute__(self, "_sbx_target")
        guards: Guards = object.__getattribute__(self, "_sbx_guards")
        frame = target.obj
        if isinstance(frame, pd.DataFrame) and guards.unit_column in frame.columns:
            if not isinstance(key, tuple) or len(key) < 2:
                raise GuardDenied(
                    f"writing whole rows would overwrite the unit column {guards.unit_column!r}"
                )
            columns = key[1]
            if isinstance(target, (_iLocIndexer, _iAtIndexer)):
                columns = frame.columns[columns]
            guards.refuse_unit_labels(_labels(columns))
        target[key] = value


def _labels(key: object) -> list[object]:
    if isinstance(key, (list, tuple, pd.Index, pd.Series, np.ndarray)):
        return list(key)
    if isinstance(key, slice):
        return [key.start, key.stop]
    return [key]


class _PrintCollector:
    """``print`` inside a job: collected (up to a cap) and later withheld, never written anywhere."""

    def __init__(self, limit: int) -> None:
        #: The job's code has a ``print`` (``runtime._prints``), whether or not it ran or wrote anything.
        self.used = False
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self.limit = limit

    def __call__(self) -> str:
        return "".join(self.parts)

    def _call_print(
        self, *objects: object, sep: str | None = " ", end: str | None = "\n", **kw: object
    ) -> None:
        if kw:
            raise GuardDenied("print() accepts only sep and end in the sandbox (no file=)")
        text = (" " if sep is None else str(sep)).join(str(o) for o in objects) + (
            "\n" if end is None else str(end)
        )
        room = self.limit - self.size
        if room <= 0:
            self.truncated = True
            return
        if len(text) > room:
            text, self.truncated = text[:room], True
        self.parts.append(text)
        self.size += len(text)


_INPLACE: Mapping[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}


class Guards:
    """The guard functions of one run, bound to its allow-list, code, unit column and modules."""

    def __init__(
        self,
        allowlist: Allowlist,
        *,
        code: str,
        unit_column: str,
        modules: Sequence[str],
        state: RunState,
        print_limit: int,
    ) -> None:
        self.allowlist = allowlist
        self.code = code
        self.unit_column = unit_column
        self.modules = frozenset(modules)
        self.state = state
        self.printer = _PrintCollector(print_limit)
        self._resolving_types: tuple[type, ...] = (
            pd.DataFrame,
            pd.Series,
            pdt.DataFrameGroupBy,
            pdt.SeriesGroupBy,
            pdt.Resampler,
            pdt.Rolling,
        )
        self._writable_indexers: tuple[type, ...] = (_LocIndexer, _iLocIndexer, _AtIndexer, _iAtIndexer)

    # -- refusals -----------------------------------------------------------------------------------
    def deny(self, message: str) -> GuardDenied:
        if self.state.violation is None:
            self.state.violation = message
        return GuardDenied(message)

    def shown(self, name: object) -> str:
        """A name as it may appear in an error: quoted only if the job's code spells it literally,
        because a name computed at run time could carry a data value."""
        if isinstance(name, str) and name.isidentifier() and name in self.code:
            return repr(name)
        return "a computed name"

    def refuse_unit_labels(self, labels: Iterable[object]) -> None:
        if any(str(label) == self.unit_column for label in labels):
            raise self.deny(f"the unit column {self.unit_column!r} is read-only")

    # -- attribute access ---------------------------------------------------------------------------
    def getattr(self, obj: object, name: str, default: object = None) -> Any:
        """``_getattr_``: allow-listed names only; wraps a few methods whose arguments need checks."""
        if not isinstance(name, str):
            raise self.deny("attribute names must be strings")
        if name.startswith("_"):
            raise self.deny(f"{self.shown(name)} is not allowed: names starting with '_' are private")
        if isinstance(obj, ModuleView):
            return self.module_attribute(obj, name)
        kind = obj if isinstance(obj, type) else type(obj)
        if isinstance(obj, tuple) and not isinstance(obj, type) and name in getattr(kind, "_fields", ()):
            return getattr(obj, name)  # named-tuple fields are plain values
        if name not in self.allowlist.allowed(kind):
            reason = _REASONS.get(name)
            if reason is None and name.startswith(("to_", "read_")):
                reason = "file, clipboard and serialisation I/O is not available"
            what = f"{self.shown(name)} on {kind.__name__}"
            raise self.deny(
                f"{what} is not allowed" + (f": {reason}" if reason else " (not on the allow-list)")
            )
        value = getattr(obj, name)
        if isinstance(value, ModuleType):
            raise self.deny(f"{self.shown(name)} leads to a module, which is not allowed")
        if name == "format" and issubclass(kind, str):
            return _checked_format(obj if isinstance(obj, str) else None, self)
        if name in self.allowlist.resolves_names and _is_pandas_type(kind):
            return self._checked_call(value)
        return value

    def getattr_builtin(self, obj: object, name: str, *default: object) -> Any:
        """``getattr()`` for job code: the same checks; a default is returned only for missing names."""
        try:
            return self.getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise

    def hasattr_builtin(self, obj: object, name: str) -> bool:
        if not isinstance(name, str) or name.startswith("_"):
            return False
        kind = obj if isinstance(obj, type) else type(obj)
        if isinstance(obj, ModuleView):
            rule: ModuleRule = object.__getattribute__(obj, "_sbx_rule")
            return name in rule.names
        return name in self.allowlist.allowed(kind) and hasattr(obj, name)

    def module_attribute(self, view: ModuleView, name: str) -> Any:
        module_name: str = object.__getattribute__(view, "_sbx_name")
        module: ModuleType = object.__getattribute__(view, "_sbx_module")
        rule: ModuleRule = object.__getattribute__(view, "_sbx_rule")
        if name.startswith("_") or name not in rule.names:
            raise self.deny(f"{self.shown(name)} is not available from module {module_name!r}")
        value = getattr(module, name)
        if isinstance(value, ModuleType):
            full = f"{module_name}.{name}"
            if full not in rule.submodules or full not in self.allowlist.modules:
                raise self.deny(f"module {full!r} is not available")
            return ModuleView(full, value, self.allowlist.modules[full], self)
        return self._instrument(module_name, name, value)

    def _instrument(self, module_name: str, name: str, value: Any) -> Any:
        """Model-fitting functions record (observations, parameters) for the disclosure report."""
        if (module_name, name) == ("numpy.linalg", "lstsq"):
            return self._record_fit("numpy.linalg.lstsq", value, lambda a, *_: np.shape(a))
        if (module_name, name) == ("numpy", "polyfit"):
            return self._record_fit(
                "numpy.polyfit", value, lambda x, _y, deg, *_: (len(np.asarray(x)), int(deg) + 1)
            )
        if (module_name, name) == ("statistics", "linear_regression"):
            return self._record_fit("statistics.linear_regression", value, lambda x, *_: (len(x), 2))
        if (module_name, name) in {("pandas", "pivot_table"), ("pandas", "crosstab")}:
            return self._checked_call(value)
        return value

    def _record_fit(
        self, label: str, function: Callable[..., Any], shape: Callable[..., Any]
    ) -> Callable[..., Any]:
        def fit(*args: Any, **kwargs: Any) -> Any:
            out = function(*args, **kwargs)
            dims = tuple(shape(*args))
            n_obs = int(dims[0]) if dims else 0
            n_params = int(dims[1]) if len(dims) > 1 else 1
            self.state.model_fits.append(ModelFit(label, n_obs, n_params))
            return out

        return fit

    def _checked_call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.check_function_names(args, depth=0)
            self.check_function_names(tuple(kwargs.values()), depth=0)
            return method(*args, **kwargs)

        return call

    def check_function_names(self, values: Iterable[object], *, depth: int) -> None:
        """pandas resolves a string argument of ``agg``/``apply``/... with ``getattr`` on the frame (and
        on numpy): refuse any string that names a method which is not a plain reduction."""
        if depth > 4:
            return
        for value in values:
            if isinstance(value, str):
                if value in self.allowlist.safe_function_names:
                    continue
                if (
                    value.startswith("_")
                    or hasattr(np, value)
                    or any(hasattr(t, value) for t in self._resolving_types)
                ):
                    raise self.deny(f"{self.shown(value)} is not allowed as a function name here")
            elif isinstance(value, (list, tuple)):
                self.check_function_names(value, depth=depth + 1)
            elif isinstance(value, dict):
                self.check_function_names(value.values(), depth=depth + 1)

    # -- items, writes, iteration ---------------------------------------------------------------------
    def getitem(self, obj: object, key: object) -> Any:
        kind = type(obj)
        if isinstance(obj, (ModuleView, type)) or not (
            self.allowlist.is_known(kind) or isinstance(obj, self._writable_indexers)
        ):
            raise self.deny(f"indexing {kind.__name__} is not allowed")
        return obj[key]  # type: ignore[index]

    def write(self, obj: object) -> Any:
        """``_write_``: the object (or a proxy) on which an item or attribute assignment happens."""
        if isinstance(obj, (dict, list, np.ndarray)) and not isinstance(obj, type):
            return obj
        if isinstance(obj, (pd.DataFrame, pd.Series)):
            return _FrameWriter(obj, self)
        if isinstance(obj, self._writable_indexers):
            return _IndexerWriter(obj, self)
        raise self.deny(f"modifying {type(obj).__name__} objects is not allowed")

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        return _INPLACE[op](target, value)

    def apply(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    def print_factory(self, _getattr: object = None) -> _PrintCollector:
        return self.printer

    # -- imports ------------------------------------------------------------------------------------
    def import_module(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleView:
        if level != 0:
            raise self.deny("relative imports are not allowed")
        top = name.split(".")[0]
        if top not in self.modules:
            raise self.deny(f"module {name!r} is not in this scope's module list")
        if top not in self.allowlist.modules:
            raise self.deny(f"module {name!r} has no sandbox allow-list and cannot be imported")
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent, child = ".".join(parts[:i]), ".".join(parts[: i + 1])
            if child not in self.allowlist.modules[parent].submodules:
                raise self.deny(f"module {child!r} is not available")
        target = name if fromlist else top
        module = __import__(target, fromlist=["_"] if "." in target else [])
        return ModuleView(target, module, self.allowlist.modules[target], self)


def _checked_format(bound: str | None, guards: Guards) -> Callable[..., str]:
    """``str.format`` without attribute or index walks in the fields (``'{0.__class__}'``)."""

    def check(template: str, depth: int = 0) -> None:
        for _literal, field_name, spec, _conversion in string.Formatter().parse(template):
            if field_name and ("." in field_name or "[" in field_name):
                raise guards.deny("format fields may not read attributes or items; use f-strings")
            if spec and "{" in spec and depth < 3:
                check(spec, depth + 1)

    def format_bound(*args: object, **kwargs: object) -> str:
        assert bound is not None
        check(bound)
        return bound.format(*args, **kwargs)

    def format_unbound(template: str, *args: object, **kwargs: object) -> str:
        if not isinstance(template, str):
            raise guards.deny("str.format needs a string")
        check(template)
        return template.format(*args, **kwargs)

    return format_bound if bound is not None else format_unbound
