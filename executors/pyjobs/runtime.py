"""Run one Python job under the restricted runtime and classify what it produced.

Entry point: :func:`run_python_job`. It is meant to run inside the executor's per-job sandbox process
(rlimits, wall-clock timeout, no network); the guards here are the language-level layer on top.

The job's code reads its inputs by table name (and from ``tables``), may call ``aggregate()``, and
hands back its answer by assigning ``result``. The outcome is:

* :class:`AggregateOutput` when ``result`` is a table built by ``aggregate()`` (with hidden
  ``_sbx_units`` columns, for ``policies.check_output``), or
* :class:`WithheldOutput` for anything else, with a plain-data summary and a disclosure report,
  waiting for an output checker.

Printed output is collected, never written anywhere, and always withheld. Exceptions of the job are
reduced to their type and line.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from types import CodeType, FrameType
from typing import Any

import pandas as pd

from executors.pyjobs.allowlist import BUILTIN_NAMES, build_allowlist
from executors.pyjobs.compile import JOB_FILENAME, compile_job
from executors.pyjobs.disclosure import (
    DisclosureFinding,
    DisclosureReport,
    DisclosureThresholds,
    model_findings,
    scan_plain,
    scan_text,
)
from executors.pyjobs.errors import (
    JobRaised,
    NoResult,
    OutputRejected,
    PyJobError,
    PyJobInterrupted,
    PyJobResourceExhausted,
    SandboxViolation,
)
from executors.pyjobs.guards import GuardDenied, Guards, RunState
from executors.pyjobs.helpers import RELEASABLE_ATTRIBUTES, Aggregator, ReleasableTable
from executors.pyjobs.pseudonyms import PseudonymIndex
from executors.pyjobs.summary import table_to_plain, to_plain
from executors.pyjobs.taint import deep_unwrap
from executors.pyjobs.tracking import Tracker

#: Name the job assigns its answer to.
RESULT_NAME = "result"


@dataclass(frozen=True)
class PyLimits:
    """Language-level limits; the sandbox process adds memory and wall-clock limits around them."""

    cpu_s: float = 60.0  # CPU seconds before the job is stopped (main thread only)
    recursion_depth: int = 400  # extra Python frames the job may use
    max_output_cells: int = 200_000
    max_print_chars: int = 100_000


@dataclass(frozen=True)
class WithheldOutput:
    """An output that only an output checker may release: plain data and the automatic report."""

    summary: Mapping[str, object] | None  # plain data (JSON-compatible) of ``result``; None if unset
    printed: str | None  # collected print output, if any
    report: DisclosureReport
    mock: bool = False
    from_aggregate: bool = False  # an aggregate() table the runtime withheld (a flag of its report)

    def to_dict(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "printed": self.printed,
            "report": self.report.to_dict(),
            "mock": self.mock,
            "from_aggregate": self.from_aggregate,
        }


@dataclass(frozen=True)
class AggregateOutput:
    """A table built by ``aggregate()``: group keys, aggregates and hidden ``_sbx_units*`` columns."""

    table: pd.DataFrame
    report: DisclosureReport  # dominance / p% findings of the helper (advisory)
    printed: WithheldOutput | None = None  # print output of the same job, withheld for a checker
    mock: bool = False


PyJobOutcome = AggregateOutput | WithheldOutput

_DEFAULT_THRESHOLDS = DisclosureThresholds()
_DEFAULT_LIMITS = PyLimits()


#: Hints for exceptions of the job, in place of their messages (which may quote data values).
_HINTS: Mapping[str, str] = {
    "KeyError": "a column or key was not found",
    "IndexError": "an index was out of range",
    "TypeError": "an operation got a value of the wrong type",
    "ValueError": "an operation got an unsuitable value",
    "ZeroDivisionError": "division by zero",
    "AttributeError": "an attribute does not exist",
    "NameError": "a name is not defined",
}


def run_python_job(
    code: str,
    inputs: Mapping[str, pd.DataFrame],
    *,
    unit_column: str,
    modules: Sequence[str],
    thresholds: DisclosureThresholds = _DEFAULT_THRESHOLDS,
    limits: PyLimits = _DEFAULT_LIMITS,
    mock: bool = False,
    pseudonyms: AbstractSet[str] | None = None,
    group_columns: Mapping[str, AbstractSet[str]] | None = None,
    legacy_disclosure: bool = False,
) -> PyJobOutcome:
    """Compile and run ``code`` on ``inputs`` (unit column already pseudonymised) under the guards.

    Raises a :class:`PyJobError` subclass: ``CodeRejected``, ``SandboxViolation``, ``JobRaised``,
    ``PyJobResourceExhausted``, ``PyJobInterrupted``, ``NoResult``, ``OutputRejected``, ``HelperError``.
    ``pseudonyms``: the set of unit pseudonyms, if the caller has it (it replaced the unit column);
    otherwise it is derived from the inputs when needed. ``legacy_disclosure``: only to replay a job
    released under the rules before printing was read off the code and model fits left released reports
    (``_legacy_printed``, ``_classify``).

    >>> units = ["p1", "p2", "p3", "p4"]
    >>> frame = pd.DataFrame({"person_id": units, "g": ["a"] * 4, "x": [1.0, 3.0, 2.0, 2.0]})
    >>> out = run_python_job("result = aggregate(t, by='g', aggs={'m': ('x', 'mean')})",
    ...                      {"t": frame}, unit_column="person_id", modules=[])
    >>> out.table[["g", "m", "_sbx_units"]].to_dict("records")
    [{'g': 'a', 'm': 2.0, '_sbx_units': 4}]
    >>> sorted(out.table["_sbx_cohort"][0])  # the units behind the row, for the released-cohort ledger
    ['p1', 'p2', 'p3', 'p4']
    """
    compiled = compile_job(code)
    allowlist = build_allowlist()
    allowlist = replace(
        allowlist, attributes={**allowlist.attributes, ReleasableTable: RELEASABLE_ATTRIBUTES}
    )
    state = RunState()
    guards = Guards(
        allowlist,
        code=code,
        unit_column=unit_column,
        modules=modules,
        state=state,
        print_limit=limits.max_print_chars,
    )
    # Whether the job prints is read off its code, never off the run: a ``print`` in a callback that
    # ``apply`` calls once per row of a frame that holds one person or none would otherwise print or not.
    guards.printer.used = _prints(compiled)
    index = PseudonymIndex(inputs, unit_column, known=pseudonyms)
    aggregator = Aggregator(
        unit_column=unit_column,
        pseudonyms=index,
        thresholds=thresholds,
        key_sources=None if group_columns is None else _key_sources(inputs, group_columns, unit_column),
    )
    tracker = Tracker(guards, unit_column=unit_column, min_units=thresholds.min_units)
    # pandas copies on write: a shallow copy keeps the caller's frames unchanged whatever the job does.
    # Row labels must be unique: the tracker lines rows up by them.
    tables = {
        name: tracker.track_input(name, _unique_labels(frame.copy(deep=False)))
        for name, frame in inputs.items()
    }
    namespace: dict[str, Any] = {
        "__builtins__": _builtins(guards, tracker),
        "__name__": "job",
        **tracker.namespace(),
        "_print_": guards.print_factory,
        "aggregate": tracker.aggregate_hook(aggregator),
        "tables": dict(tables),
    }
    for name, frame in tables.items():
        if name.isidentifier() and not name.startswith("_") and name not in namespace:
            namespace[name] = frame

    _execute(compiled, namespace, code=code, state=state, limits=limits)
    if state.violation is not None:
        raise SandboxViolation(state.violation)
    return _classify(
        deep_unwrap(namespace.get(RESULT_NAME, _UNSET))[0],
        guards=guards,
        tracker=tracker,
        state=state,
        aggregator=aggregator,
        pseudonyms=index,
        thresholds=thresholds,
        limits=limits,
        mock=mock,
        input_rows=[len(f) for f in inputs.values()],
        legacy_disclosure=legacy_disclosure,
    )


_UNSET = object()


def _unique_labels(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if frame.index.is_unique else frame.reset_index(drop=True)


def _builtins(guards: Guards, tracker: Tracker) -> dict[str, object]:
    import builtins

    table: dict[str, object] = {name: getattr(builtins, name) for name in sorted(BUILTIN_NAMES)}
    table.update(
        {
            "None": None,
            "True": True,
            "False": False,
            "getattr": tracker.getattr_builtin,
            "hasattr": tracker.hasattr_builtin,
            "__import__": guards.import_module,
        }
    )
    return table


def _execute(
    compiled: Any, namespace: dict[str, Any], *, code: str, state: RunState, limits: PyLimits
) -> None:
    with _job_context(limits) as stopped:
        try:
            exec(compiled, namespace)  # noqa: S102 - restricted code with guarded globals
        except GuardDenied as exc:
            raise SandboxViolation(state.violation or str(exc)) from None
        except _CpuLimit:
            raise PyJobResourceExhausted(f"the job used more than {limits.cpu_s:g} CPU seconds") from None
        except RecursionError:
            raise PyJobResourceExhausted("the job exceeded the recursion limit") from None
        except MemoryError:
            raise PyJobResourceExhausted("the job ran out of memory") from None
        except PyJobError:
            raise
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            raise PyJobInterrupted(f"the job was interrupted ({type(exc).__name__})") from None
        except Exception as exc:
            if stopped():
                raise PyJobResourceExhausted(f"the job used more than {limits.cpu_s:g} CPU seconds") from None
            raise JobRaised(_describe(exc, code)) from None


def _describe(exc: BaseException, code: str) -> str:
    """Type, line and a generic hint; never ``str(exc)``, which may quote data values."""
    name = type(exc).__name__
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == JOB_FILENAME:
            line = lineno
    where = f" at line {line}" if line is not None else ""
    hint = _HINTS.get(name, "the message is withheld because it may contain data values")
    if name in {"NameError", "UnboundLocalError"} and isinstance(getattr(exc, "name", None), str):
        missing = exc.name  # type: ignore[attr-defined]
        if missing.isidentifier() and missing in code:
            hint = f"name {missing!r} is not defined"
    return f"the job raised {name}{where}: {hint}"


class _CpuLimit(BaseException):
    """Raised by the CPU-time signal handler; job code cannot catch it."""


def _stack_depth() -> int:
    depth = 0
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


@contextlib.contextmanager
def _job_context(limits: PyLimits) -> Iterator[Any]:
    """Recursion limit, warnings silenced (they could print data), and a CPU-time alarm.

    The alarm is ``ITIMER_VIRTUAL`` (process CPU time): a ``while True: pass`` loop calls no guard, so
    only a signal stops it. It re-fires every 0.2 s so a ``finally`` block cannot absorb it. Signals
    can only be installed from the main thread; elsewhere the sandbox's wall-clock timeout applies.
    """
    old_limit = sys.getrecursionlimit()
    fired = {"stopped": False, "armed": True}
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if fired["armed"]:
            fired["stopped"] = True
            raise _CpuLimit

    old_handler: Any = None
    try:
        sys.setrecursionlimit(_stack_depth() + limits.recursion_depth)
        if main:
            old_handler = signal.signal(signal.SIGVTALRM, on_alarm)
            signal.setitimer(signal.ITIMER_VIRTUAL, limits.cpu_s, 0.2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield lambda: fired["stopped"]
    finally:
        fired["armed"] = False
        if main:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0.0, 0.0)
            signal.signal(signal.SIGVTALRM, old_handler)
        sys.setrecursionlimit(old_limit)


def _classify(
    result: object,
    *,
    guards: Guards,
    tracker: Tracker,
    state: RunState,
    aggregator: Aggregator,
    pseudonyms: PseudonymIndex,
    thresholds: DisclosureThresholds,
    limits: PyLimits,
    mock: bool,
    input_rows: Sequence[int],
    legacy_disclosure: bool = False,
) -> PyJobOutcome:
    # Printed output whenever the code prints, even nothing: whether ``print('x' * len(her), end='')``
    # wrote a character depends on one person, and printed output sends a table to a checker.
    if legacy_disclosure:
        printed = _legacy_printed(guards)
    else:
        printed = guards.printer() if guards.printer.used else None
    fits = [(f.function, f.n_obs, f.n_params) for f in state.model_fits]
    helper_findings = tuple(f for table in aggregator.issued for f in table._sbx_findings)
    if result is _UNSET and printed is None:
        raise NoResult(f"the job did not assign {RESULT_NAME!r} and printed nothing")
    printed_report = DisclosureReport(
        tuple(scan_text(printed or "", pseudonyms=pseudonyms, where="printed output"))
    )
    if guards.printer.truncated:
        printed_report = printed_report.merged(
            DisclosureReport(
                (
                    DisclosureFinding(
                        "row-level",
                        "note",
                        f"printed output was cut at {limits.max_print_chars} characters",
                        "printed output",
                    ),
                )
            )
        )

    if isinstance(result, ReleasableTable) and any(result is t for t in aggregator.issued):
        frame = result._sbx_frame
        visible = frame[[c for c in frame.columns if not str(c).startswith("_sbx_")]]
        plain = table_to_plain(visible, max_cells=limits.max_output_cells)
        scanned = tuple(
            f
            for f in scan_plain(plain, pseudonyms=pseudonyms, thresholds=thresholds, where="aggregate result")
            # Only values that ARE unit pseudonyms or look like identifiers matter here: group keys of
            # an aggregate are distinct by construction ("distinct-values"), and k is checked per group.
            if f.rule == "identifier"
        )
        report = DisclosureReport(result._sbx_findings + scanned)
        # The model fits' findings go to a checker only: released with the table, "1385 residual degrees
        # of freedom" counts the rows of whatever frame the fit read (everyone but one person, or not),
        # and a fit that does not flow into the table releases nothing else (the tracker taints one that
        # does).
        fitted = DisclosureReport(tuple(model_findings(fits, thresholds)))
        if legacy_disclosure:
            # Legacy (replay only): a job released before this listed its fits in the released report.
            report, fitted = report.merged(fitted), DisclosureReport(())
        withheld_print = (
            WithheldOutput(summary=None, printed=printed, report=printed_report, mock=mock)
            if printed is not None
            else None
        )
        # Any flag of the helper withholds the table: a column that depends on other rows, a key that is
        # not a group column, a dominated cell (dominance, p%). Group keys equal to unit pseudonyms: the
        # table is row-level in disguise. A person decides.
        flagged = any(f.severity == "flag" for f in result._sbx_findings)
        if not scanned and not flagged:
            return AggregateOutput(table=frame.copy(), report=report, printed=withheld_print, mock=mock)
        return WithheldOutput(
            summary=plain,
            printed=printed,
            report=report.merged(fitted).merged(printed_report),
            mock=mock,
            from_aggregate=True,
        )

    summary: Mapping[str, object] | None = None
    findings: list[DisclosureFinding] = []
    if result is not _UNSET:
        try:
            summary = to_plain(result, max_cells=limits.max_output_cells)
        except RecursionError:
            raise OutputRejected("the result is nested too deeply for review") from None
        findings.extend(
            scan_plain(summary, pseudonyms=pseudonyms, thresholds=thresholds, input_rows=input_rows)
        )
    findings.extend(model_findings(fits, thresholds))
    findings.extend(helper_findings)
    findings.extend(tracker.cell_findings)
    findings.append(
        DisclosureFinding(
            "not-assessed",
            "note",
            "dominance and p% rules were assessed only for tables built with aggregate(); other values need "
            "the checker's judgement",
            "result",
        )
    )
    report = DisclosureReport(tuple(findings)).merged(printed_report)
    return WithheldOutput(summary=summary, printed=printed, report=report, mock=mock)


def _legacy_printed(guards: Guards) -> str | None:
    """Legacy (replay only): the printed text, None when the run printed nothing, as jobs released
    before printing was read off the code (``_prints``) were decided; replaying one of them must
    release it again as it was (automatically, when its ``print`` wrote nothing)."""
    return guards.printer() or None


def _prints(code: CodeType) -> bool:
    """Whether ``code`` or any function or comprehension in it prints (RestrictedPython turns every
    ``print`` into a call through ``_print_``)."""
    return "_print_" in code.co_names or any(
        _prints(const) for const in code.co_consts if isinstance(const, CodeType)
    )


def _key_sources(
    inputs: Mapping[str, pd.DataFrame], group_columns: Mapping[str, AbstractSet[str]], unit_column: str
) -> dict[str, list[pd.MultiIndex]]:
    """For every column a SQL job could group by, the (unit, value) pairs the inputs hold, by column name
    (several tables may share a name). Taken before the job runs, so job code cannot change them."""
    sources: dict[str, list[pd.MultiIndex]] = {}
    for table, frame in inputs.items():
        if unit_column not in frame.columns:
            continue  # no unit to tie a value to a person: such keys are left to a checker
        for column in group_columns.get(table, ()):
            if column in frame.columns:
                pairs = pd.MultiIndex.from_arrays([frame[unit_column], frame[column]]).unique()
                sources.setdefault(column, []).append(pairs)
    return sources
