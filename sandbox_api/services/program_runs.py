"""Running Python and mock jobs: the executor spec, and what happens to the outcome.

The runner (``sandbox_api/runner.py``) claims, executes, cancels and fails these jobs exactly like SQL
jobs; this module supplies the two steps that differ:

* :meth:`ProgramRuns.spec` turns the stored job into a ``JobSpec`` with a ``Program`` (the input
  SELECTs, the per-job pseudonym key, the scope's modules and thresholds; mock twins and no data keys
  in mock mode);
* :meth:`ProgramRuns.settle` decides the outcome in the job's ``checking`` state: a table built by
  ``aggregate()`` goes through ``policies.check_output`` exactly like a SQL result and is released;
  anything else, and any printed output, is withheld for output checkers (``services/review.py``)
  with the automatic disclosure report. In mock mode everything is released to the operator,
  labelled mock: the data is synthetic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import pandas as pd

from crypto.pseudonym import derive_key
from executors.base import JobSpec, Limits, ResultTable, TableInput
from executors.lifecycle import JobState
from executors.pyjobs import DisclosureThresholds, PyLimits
from executors.python_job import InputQuery, MockSource, Program, ProgramResult
from policies import Scope, TableRef, check_output, result_hash
from policies.model import Use
from sandbox_api.services.jobs import JobService
from sandbox_api.services.mock import mock_sources
from sandbox_api.services.policy_catalog import build_catalog
from sandbox_api.services.review import WithheldPayload, withhold
from sandbox_api.store.models import JobRow


@dataclass(frozen=True)
class ProgramRuns:
    jobs: JobService
    pseudonym_master: bytes
    limits: Limits

    def spec(
        self,
        *,
        job_id: str,
        kind: str,
        mode: str,
        code: str,
        sql: str,
        inputs: Sequence[Mapping[str, str]],
        tables: tuple[TableInput, ...],
        keyed_hash_key: bytes | None,
        scope: Scope,
        dataset_versions: Mapping[str, str],
    ) -> JobSpec:
        """The executor spec of a Python or mock job (``tables``: the real inputs, unused in mock mode)."""
        queries = tuple(
            InputQuery(
                name=str(i["sql_name"]),
                sql=str(i["sql"]),
                unit=str(i["unit"]),
                pseudonymise=tuple(p for p in str(i.get("pseudonymise", "")).split(",") if p),
                group_columns=tuple(c for c in str(i.get("group_columns", "")).split(",") if c),
            )
            for i in inputs
        )
        # Per job: the same person has the same token in every table of this job, and another token
        # in every other job (derived, so a replay of the job sees the same tokens).
        job_key = derive_key(self.pseudonym_master, "job:" + job_id)
        mock = mode == "mock"
        sources: tuple[MockSource, ...] = ()
        if mock:
            refs = [
                TableRef(dataset=str(i["dataset"]), table=str(i["table"]), sql_name=str(i["sql_name"]))
                for i in inputs
            ]
            catalog = build_catalog(self._pinned_versions(dataset_versions))
            sources = mock_sources(catalog, refs)
        timeout = min(self.limits.timeout_s, float(self.limits.cpu_s))
        program = Program(
            kind=cast(Literal["sql", "python"], kind),
            mode=cast(Literal["real", "mock"], mode),
            inputs=queries,
            pseudonym_key=job_key,
            code=code,
            modules=tuple(scope.python.modules),
            thresholds=DisclosureThresholds(min_units=scope.disclosure.min_units),
            # The language-level CPU alarm ends a runaway job with a clear reason before the
            # sandbox's wall-clock limit has to kill it.
            py_limits=PyLimits(cpu_s=max(1.0, 0.8 * timeout)),
            mock_sources=sources,
        )
        return JobSpec(
            job_id=job_id,
            sql=sql if kind == "sql" else "",
            tables=() if mock else tables,
            # Mock twins are synthetic: their keyed-hash masks use the job key, never the scope's.
            keyed_hash_key=job_key if mock else keyed_hash_key,
            limits=self.limits,
            program=program,
        )

    def settle(self, job_id: str, result: ResultTable, *, scope: Scope, timings: Mapping[str, float]) -> None:
        """Release or withhold a job in ``checking`` (one transaction; nothing if it moved on)."""
        jobs = self.jobs
        outcome = ProgramResult.from_arrow(result.to_arrow())
        with jobs.db.write() as session:
            row = session.get(JobRow, job_id)
            if row is None or row.state != JobState.CHECKING.value:
                return
            mock = row.mode == "mock"
            payload, suppression, automatic = _payload(
                outcome, scope=scope, inputs=row.inputs, mock=mock, engine=result.engine
            )
            row.timings = dict(timings)
            if mock or automatic:
                columns, rows = payload.columns_rows()
                jobs.store_release(
                    session,
                    row,
                    columns=columns,
                    rows=rows,
                    result_hash=payload.result_hash,
                    report=suppression,
                    timings=dict(timings),
                    output=None if row.kind == "sql" else payload.released_output(),
                    engine=dict(result.engine),
                    reason="released on mock data (synthetic: no output review, nothing spent)"
                    if mock
                    else "released after the output check",
                )
                return
            withhold(jobs, session, row, payload, required=scope.review.checkers)

    def _pinned_versions(self, dataset_versions: Mapping[str, str]) -> dict[str, Any]:
        """The catalog views of exactly the versions the job was pinned to at submission."""
        out = {}
        for ref, version_id in dataset_versions.items():
            domain, name = ref.split("/", 1)
            dataset = self.jobs.catalog.get_dataset(domain, name)
            version = next((v for v in dataset.versions if v.version_id == version_id), None)
            if version is not None:
                out[ref] = version
        return out


def _payload(
    outcome: ProgramResult,
    *,
    scope: Scope,
    inputs: Sequence[Mapping[str, Any]],
    mock: bool,
    engine: Mapping[str, str],
) -> tuple[WithheldPayload, dict[str, Any], bool]:
    """The output as stored for release or review, its suppression report, and whether it may be
    released without a person (a clean ``aggregate()`` table with nothing printed)."""
    if outcome.outcome == "withheld":
        withheld = dict(outcome.withheld or {})
        summary = withheld.get("summary")
        report = dict(cast(Mapping[str, Any], withheld.get("report") or {}))
        payload = WithheldPayload.build(
            table=_plain_table(summary),
            summary=summary,
            printed=_text(withheld.get("printed")),
            report=report,
        )
        rows = len(payload.table["rows"]) if payload.table is not None else 0
        reasons = (
            ["mock data: generated from the declared schema, not the real rows; no suppression applied"]
            if mock
            else ["not built with aggregate(): released only by output checkers"]
        )
        return payload, {"rows_in": rows, "rows_released": rows, "mock": mock, "reasons": reasons}, False
    released = check_output(outcome.table.to_pandas(), scope.disclosure, mock=mock)
    table = released.table
    body = json.loads(table.to_json(orient="split", index=False, date_format="iso"))
    findings: list[Any] = list(cast(list[Any], (outcome.report or {}).get("findings", [])))
    printed = dict(outcome.printed or {})
    printed_report = cast(Mapping[str, Any], printed.get("report") or {})
    findings += list(cast(list[Any], printed_report.get("findings", [])))
    keys = _group_key_findings(table, inputs, scope) if outcome.outcome == "aggregate" and not mock else []
    findings += keys
    payload = WithheldPayload.build(
        table={"columns": [str(c) for c in body["columns"]], "rows": [list(r) for r in body["data"]]},
        summary=None,
        printed=_text(printed.get("printed")),
        report={"flagged": any(f.get("severity") == "flag" for f in findings), "findings": findings},
        table_hash=result_hash(table),
        engine=engine,
    )
    automatic = outcome.outcome == "aggregate" and payload.printed is None and not keys
    return payload, released.report.to_dict(), automatic


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
