"""Cross-domain jobs (``kind: cross-domain``): SQL joining two domains' datasets, run as a private join.

The strategy for the one job pipeline (``services/job_kinds.py``). At submit, the operator's SQL is
checked and rewritten by the policy engine exactly as a SQL job's (masks, clamps, row filters, column
uses), then split into each domain's own SELECT and the plan of the private join
(``executors.crossdomain.split``); a query outside the supported shape, a scope whose disclosure
settings cross-domain cells cannot meet (remainder rows), a question differential privacy cannot bound
across domains, or a join within one domain is rejected with findings that say what is supported.
Under a scope with differential privacy the policy engine's DP rewrite bounds each table's rows per
person and clamps values inside each domain's part, the budget is charged at submit from the DP plan as
for a SQL job, the gateway sums the cells of the public domain or those passing OpenDP's noisy
threshold (``min_units`` on exact counts gives way to them), and the one release function noises the
gateway's table (``docs/cross-domain.md``). At run time the spec carries
both parts (``executors.crossdomain.job.CrossDomainJob``) and ``executors.crossdomain.placed`` runs each
domain's part in that domain's own sandboxes; the gateway's table, with its ``_sbx_units`` column, goes
through the one release function like any SQL result.
Under a scope with the released-cohort ledger the spec also names the lineage and carries its sketch
request, so that the gateway sketches each cell from the people's lineage tokens
(``executors.crossdomain.ledger``) and the ledger decides it like a SQL cell.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlglot
from sqlglot import exp

from crypto.hashing import sha256_hex
from executors.base import JobSpec, ResultTable
from executors.crossdomain.job import CrossDomainJob, DomainPartSpec
from executors.crossdomain.packing import MAX_PEOPLE_BITS
from executors.crossdomain.plan import Function
from executors.crossdomain.protection import Protection
from executors.crossdomain.split import RULE, SUPPORTED, SplitQuery, disclosure_findings, dp_findings, split
from policies import Finding, PolicyViolation, Scope, prepare_with
from policies.catalog import domain_of
from policies.cohorts import lineage_of
from policies.dp.cost import cost_of
from policies.dp.keys import released_frame
from policies.dp.plan import DpPlan, table_rows_per_unit
from policies.model import DifferentialPrivacy
from sandbox_api.job_types import Kind, Mode
from sandbox_api.server.services.catalog import VersionView
from sandbox_api.server.services.job_kinds import (
    Checked,
    JobCheck,
    JobText,
    StoredJob,
    Transition,
    finding_dicts,
)
from sandbox_api.server.services.job_specs import JobSpecs, sql_spec
from sandbox_api.server.services.policy_catalog import PolicyContexts
from sandbox_api.server.services.release import Candidate, TableResult
from sandbox_api.server.services.release_facts import facts_of, unique_units_of
from sandbox_api.server.services.scopes import ActiveScope

#: The pass the split adds to the policy engine's, as listed in a job's ``applied``.
SPLIT_STEP = "cross_domain_split"
REJECTED = "the cross-domain query breaks the scope's rules or the supported shape; see findings"


def split_prepared(sql: str, inputs: Mapping[str, str], *, one_row: Collection[str] = ()) -> SplitQuery:
    """The rewritten ``sql`` split per domain; ``inputs`` maps each table's SQL name to its dataset
    (``domain/name``), ``one_row`` names the datasets with at most one row per person
    (:func:`one_row_datasets`). Raises ``PolicyViolation`` with findings."""
    return split(
        sql,
        datasets=dict(inputs),
        domains={d: domain_of(d) for d in inputs.values()},
        one_row=one_row,
    )


def one_row_datasets(
    inputs: Sequence[Mapping[str, Any]], versions: Mapping[str, VersionView], dp: DifferentialPrivacy | None
) -> frozenset[str]:
    """The datasets of ``inputs`` (``dataset``, ``table``, ``sql_name``) whose part holds at most one row
    per person, decided before any data is read, so that whether COUNT(*), SUM and AVG are exact never
    turns on one person's rows (``docs/cross-domain.md``). Without differential privacy: a table declared
    ``one_row_per_unit`` or measured with unique units at its pinned version (the catalog shows both; a
    row filter keeps it so). Under differential privacy: a declared register, or a rows bound of 1 for
    the table (the keyed sample keeps one row per person); never a fact measured on the data, as the
    noise never depends on one."""
    out = set()
    for item in inputs:
        described = _described(item, versions)
        declared = bool(described is not None and described.get("one_row_per_unit") is True)
        measured = bool(described is not None and described.get("unique_units") is True)
        bounded = dp is not None and dp.rows_per_unit(str(item["sql_name"])) == 1
        if declared or (measured if dp is None else bounded):
            out.add(str(item["dataset"]))
    return frozenset(out)


def _described(item: Mapping[str, Any], versions: Mapping[str, VersionView]) -> Mapping[str, Any] | None:
    """What the pinned version's catalog says of the table of ``item`` (``dataset``, ``table``)."""
    version = versions.get(str(item["dataset"]))
    if version is None:
        return None
    return next((t for t in version.tables if t.get("name") == item["table"]), None)


class CrossDomainJobs:
    """The strategy of ``kind: cross-domain`` on real data."""

    def check(
        self,
        text: JobText,
        *,
        active: ActiveScope,
        versions: Mapping[str, VersionView],
        contexts: PolicyContexts,
    ) -> Checked:
        sql = text.sql or ""
        submitted = {
            "kind": Kind.CROSS_DOMAIN.value,
            "mode": Mode.REAL.value,
            "sql_sha256": sha256_hex(sql.encode()),
        }
        scope = active.scope
        try:
            ctx = contexts.get(scope, versions)
            prepared = prepare_with(sql, ctx)
            refused = disclosure_findings(scope.disclosure)
            if refused:
                raise PolicyViolation(
                    "the scope's disclosure settings do not fit a cross-domain job", findings=refused
                )
            inputs = [
                {"dataset": t.dataset, "table": t.table, "sql_name": t.sql_name} for t in prepared.tables
            ]
            query = split_prepared(
                prepared.sql,
                {t.sql_name: t.dataset for t in prepared.tables},
                one_row=one_row_datasets(inputs, versions, _dp_of(scope, prepared.dp_plan)),
            )
            summed = any(a.function is not Function.COUNT_UNITS for a in query.plan.aggregates)
            too_large = _size_findings(inputs, versions) if summed else ()
            if too_large:
                raise PolicyViolation(
                    "the tables are too large for exact sums across domains", findings=too_large
                )
            dominance = _dominance_findings(scope, query)
            if dominance:
                raise PolicyViolation(
                    "the scope's dominance rules cannot judge these sums", findings=dominance
                )
            dp = scope.disclosure.dp
            if dp is not None and prepared.dp_plan is not None:
                bounded = dp_findings(
                    query,
                    prepared.dp_plan,
                    rows_per_unit={
                        t.dataset: table_rows_per_unit(ctx, dp, t.sql_name) for t in prepared.tables
                    },
                )
                if bounded:
                    raise PolicyViolation(
                        "differential privacy cannot bound this question across domains", findings=bounded
                    )
        except PolicyViolation as exc:
            findings = finding_dicts(exc.findings) or [
                {"rule": "policy", "message": exc.detail, "fragment": ""}
            ]
            return Checked(
                report=JobCheck(False, tuple(exc.findings) or (Finding("policy", exc.detail),), None, ()),
                findings=findings,
                fields=_fields(sql, None, (), [], {}),
                submitted=submitted,
                queued=None,
                rejected=Transition(REJECTED, {"kind": Kind.CROSS_DOMAIN.value}),
                broken="the query breaks",
            )
        used = sorted({t.dataset for t in prepared.tables})
        facts = replace(
            facts_of(
                prepared,
                scope,
                unique_units=unique_units_of(versions, [(t.dataset, t.table) for t in prepared.tables]),
            ),
            dataset_ledger_keys=True,
        )
        applied = (*prepared.applied, SPLIT_STEP)
        dp = scope.disclosure.dp
        preview = (
            cost_of(prepared.dp_plan, dp).to_dict()
            if dp is not None and prepared.dp_plan is not None
            else None
        )
        return Checked(
            report=JobCheck(True, (), prepared.sql, applied, dp=preview),
            findings=[],
            fields={
                **_fields(
                    sql,
                    prepared.sql,
                    applied,
                    [
                        {"dataset": t.dataset, "table": t.table, "sql_name": t.sql_name}
                        for t in prepared.tables
                    ],
                    {d: versions[d].version_id for d in used if d in versions},
                ),
                "uses_keyed_hash": bool(prepared.uses_keyed_hash),
                "release_facts": facts.to_json(),
            },
            submitted=submitted,
            queued=Transition(
                "accepted (cross-domain: each domain computes its own part; only protocol messages cross)",
                {
                    "kind": Kind.CROSS_DOMAIN.value,
                    "mode": Mode.REAL.value,
                    "rewritten_sha256": sha256_hex(prepared.sql.encode()),
                    "passes": list(applied),
                    "parts": _part_digests(query),
                    "values": scope.cross_domain.values,
                },
            ),
            rejected=Transition(REJECTED, {"kind": Kind.CROSS_DOMAIN.value}),
            broken="the query breaks",
        )

    def spec(self, job: StoredJob, *, scope: Scope, specs: JobSpecs) -> JobSpec:
        inputs = {str(i["sql_name"]): str(i["dataset"]) for i in job.inputs}
        pinned = {
            dataset: specs.catalog.version(domain_of(dataset), dataset.split("/", 1)[1], version_id)
            for dataset, version_id in job.dataset_versions.items()
        }
        query = split_prepared(
            job.sql, inputs, one_row=one_row_datasets(job.inputs, pinned, _dp_of(scope, job.facts.dp_plan))
        )
        tables = specs.tables(job.inputs, job.dataset_versions)
        cohorts = specs.cohorts(scope)
        if job.facts.dataset_ledger_keys and cohorts is not None:
            # Each domain's lineage keys come from its dataset's ledger key, the same for every
            # version: cells over two versions are compared (a job stored before derives them from
            # each version's data key, as it did).
            tables = tuple(
                replace(t, ledger_key=specs.catalog.ledger_key(f"{t.domain}/{t.dataset}")) for t in tables
            )
        base = sql_spec(
            job_id=job.job_id,
            sql=job.sql,
            tables=tables,
            scope=job.scope,
            uses_keyed_hash=job.uses_keyed_hash,
            pseudonym_master=specs.pseudonym_master,
            limits=specs.limits_for(scope),
            # Each domain's part samples its people's rows with the lineage's key, as one query would.
            dp_lineage=lineage_of(scope).id if job.facts.dp_plan is not None else None,
            # The lineage's element secret, for the gateway to sketch the cells (never sent to a round).
            cohorts=cohorts,
        )
        parts = {
            part.dataset: DomainPartSpec(
                domain=domain_of(part.dataset),
                dataset=part.dataset,
                sql=part.sql,
                sql_names=tuple(name for name, dataset in inputs.items() if dataset == part.dataset),
            )
            for part in (query.left, query.right)
        }
        dp = scope.disclosure.dp
        plan = job.facts.dp_plan
        selection = cost_of(plan, dp).selection if dp is not None and plan is not None else None
        return replace(
            base,
            cross_domain=CrossDomainJob(
                plan=query.plan,
                left=parts[query.left.dataset],
                right=parts[query.right.dataset],
                min_units=_gateway_min_units(scope, job),
                order_by=query.order_by,
                limit=query.limit,
                columns=_visible_columns(job.sql),
                selection=None if selection is None else (selection.scale, selection.threshold),
                keep=_public_cells(plan) if dp is not None else None,
                lineage=lineage_of(scope).id if base.cohorts is not None else "",
                protection=Protection(scope.cross_domain.values),
            ),
        )

    def candidate(self, job: StoredJob, result: ResultTable) -> Candidate:
        return TableResult(table=result.to_pandas(), engine=dict(result.engine))


CROSS_DOMAIN_JOBS = CrossDomainJobs()

#: The finding of a SQL job that reads two domains and does not fit the cross-domain shapes.
ROUTED_RULE = "cross_domain_only"


def routed_sql(
    text: JobText,
    *,
    active: ActiveScope,
    versions: Mapping[str, VersionView],
    contexts: PolicyContexts,
) -> Checked:
    """A ``kind: sql`` job whose query reads datasets of two domains, checked as the cross-domain job it
    runs as: stored and run as ``cross-domain`` (the operator gets the same table; the job, its audit
    events and its receipt say how it ran), or refused with the shapes that are supported. It never
    runs as one query in one sandbox: that sandbox would hold both domains' keys and rows.
    """
    checked = CROSS_DOMAIN_JOBS.check(
        replace(text, kind=Kind.CROSS_DOMAIN), active=active, versions=versions, contexts=contexts
    )
    submitted = {**checked.submitted, "requested_kind": Kind.SQL.value}
    if checked.queued is not None:
        queued = Transition(
            f"{checked.queued.reason}; submitted as kind sql, run as cross-domain because it reads two "
            "domains",
            {**checked.queued.details, "requested_kind": Kind.SQL.value},
        )
        return replace(
            checked,
            report=replace(checked.report, runs_as=Kind.CROSS_DOMAIN),
            submitted=submitted,
            queued=queued,
        )
    why = Finding(
        ROUTED_RULE,
        "this query reads datasets of two domains, so it can run only as a cross-domain job (each "
        "domain computes its own part; no sandbox holds both domains' rows), and as one it is refused "
        f"for the reasons listed. {SUPPORTED} Rewrite it to that shape (then kind sql or kind "
        "cross-domain both run it as a private join), or ask each domain its own question.",
    )
    findings = (*checked.report.findings, why)
    return replace(
        checked,
        report=replace(checked.report, findings=findings, runs_as=Kind.CROSS_DOMAIN),
        findings=[*checked.findings, why.to_dict()],
        submitted=submitted,
        rejected=Transition(REJECTED, {**checked.rejected.details, "requested_kind": Kind.SQL.value}),
    )


def _dp_of(scope: Scope, plan: DpPlan | None) -> DifferentialPrivacy | None:
    """The scope's DP settings where the job is noised (a DP plan was made for it), else None."""
    return scope.disclosure.dp if plan is not None else None


def _public_cells(plan: DpPlan | None) -> tuple[tuple[str, ...], tuple[tuple[object, ...], ...]] | None:
    """Under public group domains, the cells the release can show: the gateway sums those only (a cell
    whose keys are outside the domain is never released, so no domain is asked for its sums)."""
    if plan is None or plan.public_keys is None or not plan.keys:
        return None
    return tuple(c.name for c in plan.keys), tuple(itertools.product(*plan.public_keys))


def released_keys_only(spec: JobSpec, record: Mapping[str, Any] | None, plan: DpPlan | None) -> JobSpec:
    """The replay's spec of a cross-domain job whose gateway chose its keys by OpenDP's noisy threshold:
    the same job, summing only the cells whose keys it released (from the sealed record), so that no
    new selection is drawn and no domain is asked for a cell the job did not release. Any other spec is
    returned as it is."""
    job = spec.cross_domain
    if job is None or job.selection is None or record is None or plan is None:
        return spec
    names = tuple(c.name for c in plan.keys)
    released = released_frame(record)  # typed: the gateway compares keys by type (``policies.dp.keys``)
    rows = (
        tuple(zip(*(released[name].tolist() if name in released else [] for name in names), strict=True))
        if names
        else ()
    )
    return replace(spec, cross_domain=replace(job, selection=None, keep=(names, rows)))


def _gateway_min_units(scope: Scope, job: StoredJob) -> int:
    """The gateway's exact threshold on a cell's matched people. Under differential privacy none (1):
    the cells are those of the public domain (``keep``) or those whose noisy distinct-unit count passes
    OpenDP's threshold (``selection``); ``min_units`` on exact counts would let one person's presence
    decide whether a cell appears, which the noise does not cover."""
    if scope.disclosure.dp is not None and job.facts.dp_plan is not None:
        return 1
    return scope.disclosure.min_units


def _size_findings(
    inputs: Sequence[Mapping[str, Any]], versions: Mapping[str, VersionView]
) -> tuple[Finding, ...]:
    """A cell's sums are exact below ``2 ** MAX_PEOPLE_BITS`` people (``packing``). No cell holds more
    people than the smaller table has rows, so that is checked here, from the catalog, rather than
    failing a run on a cell's size (a run that fails on the data says something about it)."""
    counts = []
    for item in inputs:
        described = _described(item, versions)
        rows = described.get("row_count") if described is not None else None
        counts.append(int(rows) if isinstance(rows, int) else 1 << MAX_PEOPLE_BITS)
    if counts and min(counts) < 1 << MAX_PEOPLE_BITS:
        return ()
    return (
        Finding(
            RULE,
            f"across domains a cell's sums are exact for fewer than {1 << MAX_PEOPLE_BITS:,} people, and "
            "both tables hold that many rows; ask COUNT(DISTINCT unit) only, or over a dataset version "
            "with fewer rows on one side",
            ", ".join(str(i["dataset"]) for i in inputs),
        ),
    )


def _dominance_findings(scope: Scope, query: SplitQuery) -> tuple[Finding, ...]:
    """The dominance and p% rules judge a sum by each person's contribution to it, which no party
    holds in the clear across domains: under such a scope, a cross-domain SUM or AVG is refused rather
    than released unjudged."""
    if scope.disclosure.dominance is None:
        return ()
    summed = [a.output for a in query.plan.aggregates if a.function in (Function.SUM, Function.AVG)]
    if not summed:
        return ()
    return (
        Finding(
            RULE,
            "the scope's dominance and p% rules judge each sum by the contributions of the people behind "
            "it, which no party holds across domains; ask COUNT(DISTINCT unit) and COUNT(*) across "
            "domains, or grant the sums under a scope without dominance",
            ", ".join(summed),
        ),
    )


def _visible_columns(sql: str) -> tuple[str, ...]:
    """The operator's output columns, in order (the rewritten SQL's, less the hidden ``_sbx_`` ones)."""
    tree = sqlglot.parse_one(sql, dialect="duckdb")
    if not isinstance(tree, exp.Select):
        return ()
    return tuple(e.alias_or_name for e in tree.expressions if not e.alias_or_name.startswith("_sbx_"))


def _part_digests(query: SplitQuery) -> list[dict[str, str]]:
    return [
        {
            "dataset": part.dataset,
            "domain": domain_of(part.dataset),
            "part_sql_sha256": sha256_hex(part.sql.encode()),
        }
        for part in (query.left, query.right)
    ]


def _fields(
    sql: str,
    rewritten: str | None,
    applied: tuple[str, ...],
    inputs: list[dict[str, str]],
    versions: Mapping[str, str],
) -> dict[str, object]:
    return {
        "sql": sql,
        "kind": Kind.CROSS_DOMAIN.value,
        "mode": Mode.REAL.value,
        "rewritten_sql": rewritten,
        "applied": list(applied),
        "dataset_versions": dict(versions),
        "inputs": inputs,
        "uses_keyed_hash": False,
    }
