"""The one release function: what a job's result releases, decided from the result and the facts
recorded when the job was submitted. Pure: no database, no clock, no keys; its one source of randomness,
differential privacy's noise, is the ``sample`` argument (OpenDP's samplers unless a test passes another).

Every settlement passes here, whatever produced it:

* :class:`TableResult`: a SQL job's rows as the engine returned them (``_sbx_`` unit counts included);
  the runner, and replay, which calls :func:`release` with exactly what it has (the result table, the
  scope, the job's recorded :class:`ReleaseFacts`);
* :class:`PythonOrMockOutcome`: a Python job's or a mock job's outcome;
* :class:`Reviewed`: a withheld output that enough output checkers released.

Under a scope with ``disclosure.dp`` a SQL result is not k-suppressed: ``policies.dp.noise.release_dp``
noises it under the DP plan recorded at submit (``ReleaseFacts.dp_plan``), the report says per column
what was noised and clamped, and the exact values and noise go back in ``Released.dp_record`` to be
sealed with the result for replay (which passes that record in, so no noise is drawn again). Python
jobs under such a scope are always withheld for output checkers.

The answer is a :class:`Released` (stored, signed and handed to the operator by
``services/settlement.py``) or a :class:`Withheld` (sealed for output checkers). A rule added at the
release point (the released-cohort ledger, differential privacy) is added here once, and the facts it
needs are recorded at submit in :class:`ReleaseFacts` (``services/release_facts.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

import pandas as pd

from executors.dp_sampler import draw
from executors.python_job import PythonOrMockResult
from policies import Scope, check_output, result_hash
from policies.contribution_check import contribution_withheld
from policies.dp.cost import cost_of
from policies.dp.keys import released_frame
from policies.dp.noise import DpRelease, Sampler, release_dp
from policies.dp.plan import DpPlan
from policies.dp.replay import sealed_record
from policies.model import DifferentialPrivacy, Use
from policies.output import cap_noised
from sandbox_api.job_types import Kind
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.services.release_report import ReleaseReport
from sandbox_api.server.services.result_json import json_table
from sandbox_api.server.services.withheld import WithheldPayload

AUTOMATIC = "released after the output check"
ON_MOCK_DATA = "released on mock data (synthetic: no output review, nothing spent)"


@dataclass(frozen=True)
class TableResult:
    """A SQL job's result table, hidden ``_sbx_`` columns included, and what computed it."""

    table: pd.DataFrame
    engine: Mapping[str, str] = field(default_factory=dict)
    #: Rows (positions in ``table``) the released-cohort ledger withholds, with its reason for each.
    ledger_withheld: Mapping[int, str] = field(default_factory=dict)
    #: A differentially private job's sealed record (``policies.dp.replay.sealed_record``), given on
    #: replay: the release is rebuilt from it instead of drawing new noise (OpenDP cannot be seeded).
    dp_record: Mapping[str, Any] | None = None
    #: How many groups the k rule removed inside the query, counted in the sandbox
    #: (``policies.small_groups``); for the auditors' record only, None where not counted.
    groups_below_k: int | None = None


@dataclass(frozen=True)
class PythonOrMockOutcome:
    """A Python or mock job's outcome. ``inputs``: the job's stored inputs (to name group keys)."""

    outcome: PythonOrMockResult
    kind: Kind  # a mock SQL job has no released object
    mock: bool
    inputs: Sequence[Mapping[str, Any]] = ()
    engine: Mapping[str, str] = field(default_factory=dict)
    #: Rows of an ``aggregate()`` table the released-cohort ledger withholds, with its reason for each.
    ledger_withheld: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reviewed:
    """A withheld output that ``checkers`` released; ``reason``: the deciding checker's words."""

    payload: WithheldPayload
    checkers: tuple[str, ...]
    reason: str = ""


Candidate = TableResult | PythonOrMockOutcome | Reviewed


def ledger_table(candidate: Candidate) -> pd.DataFrame | None:
    """The table whose rows the released-cohort ledger decides: a SQL result, or a Python job's
    ``aggregate()`` table on real data (both carry ``_sbx_sketch`` cohorts made in the sandbox);
    None for anything else (mock data, outputs for review).

    >>> ledger_table(TableResult(pd.DataFrame({"n": [1]}))).columns.tolist()
    ['n']
    """
    if isinstance(candidate, TableResult):
        return candidate.table
    if (
        isinstance(candidate, PythonOrMockOutcome)
        and not candidate.mock
        and candidate.outcome.outcome == "aggregate"
    ):
        frame: pd.DataFrame = candidate.outcome.table.to_pandas()
        return frame
    return None


@dataclass(frozen=True)
class Released:
    """What the operator receives, and what the receipt signs."""

    columns: list[str]
    rows: list[list[Any]]
    result_hash: str
    report: ReleaseReport  # what the operator sees (and the receipt signs)
    audit_report: dict[str, Any] | None = None  # every count, for auditors (None: ``report`` is it)
    column_types: list[str] | None = None
    output: dict[str, Any] | None = None  # a Python job's released object and printed output
    engine: dict[str, str] = field(default_factory=dict)
    reason: str = AUTOMATIC
    #: Differential privacy: exact values and noise to seal with the result for replay (never shown).
    dp_record: dict[str, Any] | None = None


@dataclass(frozen=True)
class Withheld:
    """An output that waits for ``required`` output checkers."""

    payload: WithheldPayload
    required: int


Settlement = Released | Withheld


class ReleaseFn(Protocol):
    """The shape of :func:`release`: services take it as a collaborator, so a test build can pass a
    wrapper that counts what went through it."""

    def __call__(self, candidate: Candidate, *, scope: Scope, facts: ReleaseFacts) -> Settlement: ...


def release(candidate: Candidate, *, scope: Scope, facts: ReleaseFacts, sample: Sampler = draw) -> Settlement:
    """What ``candidate`` releases under ``scope``, with the facts recorded when the job was submitted.

    ``sample`` draws differential-privacy noise (an OpenDP measurement on its input): the only
    randomness here, passed in so that a test can pass a deterministic one.

    >>> from policies import load_scope
    >>> scope = load_scope('''
    ... scope: demo
    ... purpose: counts by district
    ... grantees: [operator:alice]
    ... valid: {from: 2026-01-01, until: 2026-12-31}
    ... datasets: {health-bureau/citizens: {columns: {district: {use: group}}}}
    ... disclosure: {min_units: 10, suppression: remainder}
    ... ''')
    >>> rows = pd.DataFrame({"district": ["a", "b", "c"], "n": [40, 6, 5], "_sbx_units": [40, 6, 5]})
    >>> facts = ReleaseFacts(additive_columns=("n",), disjoint_groups=True)
    >>> out = release(TableResult(rows), scope=scope, facts=facts)
    >>> out.rows
    [['a', 40], [None, 11]]
    """
    dp = scope.disclosure.dp
    if isinstance(candidate, TableResult):
        if dp is not None and facts.dp_plan is not None:
            return _noised_table(candidate, scope=scope, plan=facts.dp_plan, dp=dp, sample=sample)
        return _checked_table(candidate, scope=scope, facts=facts)
    if isinstance(candidate, PythonOrMockOutcome) and dp is not None and not candidate.mock:
        return _dp_withheld(candidate, scope=scope)
    if isinstance(candidate, PythonOrMockOutcome):
        return _python_or_mock(candidate, scope=scope, facts=facts)
    return _reviewed(candidate)


def _checked_table(candidate: TableResult, *, scope: Scope, facts: ReleaseFacts) -> Released:
    table = candidate.table
    withheld = candidate.ledger_withheld
    # The dominance and p% rules where the scope asks for them (the ledger still saw these rows: a
    # withheld cell constrains later ones like a released one).
    dominated = {p: r for p, r in contribution_withheld(table, scope.disclosure).items() if p not in withheld}
    if withheld or dominated:
        table = table.drop(index=table.index[sorted({*withheld, *dominated})]).reset_index(drop=True)
    checked = check_output(
        table,
        scope.disclosure,
        additive=facts.additive_columns,
        disjoint_groups=facts.disjoint_groups,
        legacy_rounding_count=facts.legacy_disclosure,
    )
    body = json_table(checked.table)
    report, audit_report = ReleaseReport.checked(checked.report), checked.report.audit_dict()
    if withheld:
        # Which rows, and why, but never by how many people they differ: that number is the leak.
        reasons = tuple(sorted(set(withheld.values())))
        report = replace(report, reasons=report.reasons + reasons, rows_withheld_by_ledger=len(withheld))
        audit_report["ledger_withheld"] = len(withheld)
    if dominated:
        report = replace(report, reasons=report.reasons + tuple(sorted(set(dominated.values()))))
        audit_report["dominance_withheld"] = len(dominated)
    if candidate.groups_below_k is not None:
        # Auditors only: "a group of this breakdown was removed" says that a group of 1..k-1 units
        # exists, which is what the k rule hides from the operator (``policies.small_groups``).
        audit_report["groups_below_k"] = candidate.groups_below_k
    return Released(
        columns=body.columns,
        rows=body.rows,
        result_hash=result_hash(checked.table),
        report=report,
        audit_report=audit_report,
        column_types=body.types,
        engine=dict(candidate.engine),
    )


def _noised_table(
    candidate: TableResult, *, scope: Scope, plan: DpPlan, dp: DifferentialPrivacy, sample: Sampler
) -> Released:
    """A SQL job under differential privacy: no k rule (partition selection or the public domain decides
    the keys), OpenDP noise on every aggregate, then the row cap and the float cap."""
    if candidate.dp_record is not None:
        noised = _sealed_release(candidate.dp_record, plan, dp)
    else:
        noised = release_dp(candidate.table, plan, dp, sample=sample)
    table, capped = cap_noised(noised.table, scope.disclosure)
    body = json_table(table)
    reasons = list(noised.reasons())
    if capped:
        reasons.append(f"{capped} rows beyond max_rows={scope.disclosure.max_rows} were cut after the noise")
    cost = noised.cost
    report = ReleaseReport(
        rows_released=len(table),
        reasons=tuple(reasons),
        cells_rounded=0,
        rows_capped=capped,
        min_units=scope.disclosure.min_units,
        mock=False,
        remainder=False,
        differential_privacy={
            "epsilon": cost.epsilon,
            "delta": cost.delta,
            "mechanism": cost.mechanism,
            "columns": {
                q.column if q.part == "value" else f"{q.column}.{q.part}": q.mechanism
                for q in cost.quantities
            },
        },
    )
    return Released(
        columns=body.columns,
        rows=body.rows,
        result_hash=result_hash(table),
        report=report,
        column_types=body.types,
        engine=dict(candidate.engine),
        reason="released with differential privacy noise (OpenDP)",
        dp_record=sealed_record(noised),
    )


def _sealed_release(record: Mapping[str, Any], plan: DpPlan, dp: DifferentialPrivacy) -> DpRelease:
    """The release a sealed record holds (replay: the noise is never drawn again)."""
    keys = [c.name for c in plan.columns]
    released = released_frame(record)  # keys with their types (a DATE key as a date): the same bytes
    return DpRelease(
        table=released[keys] if len(released.columns) else pd.DataFrame(columns=keys),
        exact=pd.DataFrame(record["exact"]),
        noise=pd.DataFrame(record["noise"]),
        cost=cost_of(plan, dp),
    )


def _dp_withheld(candidate: PythonOrMockOutcome, *, scope: Scope) -> Withheld:
    """A Python job under differential privacy: never released automatically. No DP helper exists for
    programs yet, so whatever it computed waits for output checkers, whose review is the protection."""
    outcome = candidate.outcome
    if outcome.outcome == "withheld":
        payload, _ = _withheld_payload(outcome, mock=False)
    else:
        payload, _, _ = _checked_aggregate_table(candidate, scope=scope, facts=ReleaseFacts())
    findings = [
        *cast(list[Any], payload.report.get("findings") or []),
        {
            "rule": "dp-python",
            "severity": "flag",
            "message": "the scope uses differential privacy, which Python jobs do not apply: released only "
            "by output checkers",
            "where": "scope",
        },
    ]
    flagged = replace(payload, report={**payload.report, "flagged": True, "findings": findings})
    return Withheld(payload=flagged, required=scope.review.checkers)


def _reviewed(candidate: Reviewed) -> Released:
    payload, checkers = candidate.payload, ", ".join(candidate.checkers)
    columns, rows = payload.columns_rows()
    return Released(
        columns=columns,
        rows=rows,
        result_hash=payload.result_hash,
        report=ReleaseReport.reviewed(len(rows), checkers=candidate.checkers),
        column_types=payload.column_types(),
        output=payload.released_output(),
        engine=dict(payload.engine),
        reason=f"released by output checker(s) {checkers}: {candidate.reason}".rstrip(": "),
    )


def _python_or_mock(candidate: PythonOrMockOutcome, *, scope: Scope, facts: ReleaseFacts) -> Settlement:
    """A clean ``aggregate()`` table with nothing printed is checked like a SQL result and released;
    anything else waits for output checkers. On mock data everything is released, labelled mock."""
    outcome, mock = candidate.outcome, candidate.mock
    if outcome.outcome == "withheld":
        payload, report = _withheld_payload(outcome, mock=mock)
        automatic = False
    else:
        payload, report, automatic = _checked_aggregate_table(candidate, scope=scope, facts=facts)
    if not (mock or automatic):
        return Withheld(payload=payload, required=scope.review.checkers)
    columns, rows = payload.columns_rows()
    return Released(
        columns=columns,
        rows=rows,
        result_hash=payload.result_hash,
        report=report,
        column_types=payload.column_types(),
        output=None if candidate.kind is Kind.SQL else payload.released_output(),
        engine=dict(candidate.engine),
        reason=ON_MOCK_DATA if mock else AUTOMATIC,
    )


def _withheld_payload(outcome: PythonOrMockResult, *, mock: bool) -> tuple[WithheldPayload, ReleaseReport]:
    withheld = dict(outcome.withheld or {})
    summary = withheld.get("summary")
    payload = WithheldPayload.build(
        table=_plain_table(summary),
        summary=summary,
        printed=_text(withheld.get("printed")),
        report=dict(cast(Mapping[str, Any], withheld.get("report") or {})),
    )
    rows = len(payload.table["rows"]) if payload.table is not None else 0
    flags = [
        f
        for f in cast(list[Mapping[str, Any]], payload.report.get("findings") or [])
        if f.get("severity") == "flag"
    ]
    if mock:
        reasons = ["mock data: generated from the declared schema, not the real rows; no suppression applied"]
    elif withheld.get("from_aggregate"):
        # An aggregate() table the runtime withheld: say why (the first flag; the review sees them all).
        first = flags[0] if flags else {"message": "the disclosure report flags it"}
        reasons = [f"aggregate() table withheld: {first.get('message')}; released only by output checkers"]
    else:
        reasons = ["not built with aggregate(): released only by output checkers"]
    return payload, ReleaseReport.unchecked(rows, mock=mock, reasons=tuple(reasons))


def _checked_aggregate_table(
    candidate: PythonOrMockOutcome, *, scope: Scope, facts: ReleaseFacts
) -> tuple[WithheldPayload, ReleaseReport, bool]:
    outcome, mock = candidate.outcome, candidate.mock
    table, withheld = outcome.table.to_pandas(), candidate.ledger_withheld
    if withheld:
        table = table.drop(index=table.index[sorted(withheld)]).reset_index(drop=True)
    checked = check_output(
        table,
        scope.disclosure,
        mock=mock,
        additive=facts.additive_columns,
        disjoint_groups=facts.disjoint_groups,
        legacy_rounding_count=facts.legacy_disclosure,
    )
    body = json_table(checked.table)
    findings: list[Any] = list(cast(list[Any], (outcome.report or {}).get("findings", [])))
    printed = dict(outcome.printed or {})
    printed_report = cast(Mapping[str, Any], printed.get("report") or {})
    findings += list(cast(list[Any], printed_report.get("findings", [])))
    keys = (
        _group_key_findings(checked.table, candidate.inputs, scope)
        if outcome.outcome == "aggregate" and not mock
        else []
    )
    findings += keys
    payload = WithheldPayload.build(
        table={"columns": body.columns, "rows": body.rows, "types": body.types},
        summary=None,
        printed=_text(printed.get("printed")),
        report={"flagged": any(f.get("severity") == "flag" for f in findings), "findings": findings},
        table_hash=result_hash(checked.table),
        engine=candidate.engine,
    )
    # ``outcome.printed``, not the text: a job that printed nothing this time still printed (its
    # printing can depend on one person, its code cannot).
    automatic = outcome.outcome == "aggregate" and outcome.printed is None and not keys
    report = ReleaseReport.checked(checked.report)
    if withheld:
        # As for SQL rows: which rows and why, never by how many people they differ.
        reasons = tuple(sorted(set(withheld.values())))
        report = replace(report, reasons=report.reasons + reasons, rows_withheld_by_ledger=len(withheld))
    return payload, report, automatic


def _group_key_findings(
    table: pd.DataFrame, inputs: Sequence[Mapping[str, Any]], scope: Scope
) -> list[dict[str, str]]:
    """Columns of an ``aggregate()`` table named like an input column a SQL job could not group by.

    ``aggregate()`` cannot tell a group key from an aggregate named after its column, so such a table
    goes to a person rather than out: conservative, and the finding says how to avoid it (rename).
    """
    restricted: dict[str, str] = {}
    for item in inputs:
        dataset, table_name = str(item["dataset"]), str(item["table"])
        grant = scope.datasets.get(f"{dataset}/{table_name}") or scope.datasets.get(dataset)
        if grant is None:
            continue
        for name, rule in grant.columns.items():
            if rule.use in (Use.FILTER, Use.AGGREGATE, Use.JOIN_KEY):
                restricted[name.lower()] = rule.use.value
    out = []
    for column in table.columns:
        use = restricted.get(str(column).lower())
        if use is not None:
            out.append(
                {
                    "rule": "group-key-use",
                    "severity": "flag",
                    "message": f"column {column!r} has use {use!r} in the scope, so a SQL job could not "
                    "group by it; an aggregate named like it needs a checker (rename the aggregate to "
                    "avoid this)",
                    "where": "aggregate result",
                }
            )
    return out


def _plain_table(summary: object) -> dict[str, Any] | None:
    if isinstance(summary, Mapping) and summary.get("type") == "table":
        return {"columns": list(summary.get("columns", [])), "rows": list(summary.get("rows", []))}
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
