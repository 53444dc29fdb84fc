"""Rebuilding the context a released job ran under, and its executor spec, as the runner built it.

The catalog is every dataset the job's scope names, at the version recorded at submit (the datasets the
job read at the receipt's versions); a job stored before catalogs were recorded is rebuilt on the
current versions of the datasets it did not read, with a note. The query is checked and rewritten again
in that context (``policies.prepare`` for SQL, the input plan for Python and mock jobs: a real
Python job's holds the tables its code reads, ``python_plans``) and the spec is
built by the job kind's own strategy (``services/job_kinds.py``), so the keys are derived from the same
master key and labels as the runner's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from crypto.hashing import sha256_hex
from executors.base import JobSpec, Limits
from policies import Catalog, PolicyError, Scope, prepare
from policies.python_inputs import input_plan
from sandbox_api.errors import ServiceError
from sandbox_api.job_types import Kind, Mode
from sandbox_api.server.services.catalog import version_view
from sandbox_api.server.services.job_kinds import StoredJob, kind_of, stored_inputs
from sandbox_api.server.services.job_specs import JobSpecs
from sandbox_api.server.services.jobs import JobService
from sandbox_api.server.services.policy_catalog import (
    build_catalog,
    scope_catalog_versions,
    scope_dataset_refs,
)
from sandbox_api.server.services.python_plans import python_plan
from sandbox_api.server.services.replay_records import Recorded, version_row
from sandbox_api.server.services.replay_report import Mismatch, ReplayStopped, context_missing


@dataclass(frozen=True)
class Rebuilt:
    """The job as replay rebuilt it, and its executor spec."""

    spec: JobSpec
    job: StoredJob


def rebuild(
    recorded: Recorded,
    scope: Scope,
    mismatches: list[Mismatch],
    notes: list[str],
    *,
    jobs: JobService,
    pseudonym_master: bytes,
    limits: Limits,
) -> Rebuilt:
    """The executor spec, built as the runner builds it, from the rebuilt context."""
    row = recorded.row
    before = len(mismatches)
    catalog = _catalog(recorded, scope, mismatches, notes, jobs=jobs)
    if len(mismatches) > before:
        raise ReplayStopped  # a context with a dataset missing proves nothing: the missing part is named
    used = ", ".join(f"{d.key} {d.version_id}" for d in catalog.datasets)
    python_or_mock = row.kind not in (Kind.SQL, Kind.CROSS_DOMAIN) or row.mode != Mode.REAL
    refused = f"the recorded job does not pass its scope in the rebuilt context (catalog: {used})"
    try:
        if python_or_mock:
            if row.kind == Kind.PYTHON and row.mode == Mode.REAL:
                # The tables the recorded code reads, as at submit (``python_plans``).
                planned = python_plan(scope, catalog, row.code or "")
                plan = replace(planned.plan, findings=planned.plan.findings + planned.findings)
            else:
                plan = input_plan(scope, catalog)
            if plan.findings:
                mismatches.append(
                    context_missing(
                        "query",
                        f"{refused}: its tables cannot be planned: "
                        + "; ".join(f"{f.rule}: {f.message}" for f in plan.findings),
                        expected="accepted",
                        actual="rejected",
                    )
                )
                raise ReplayStopped
            rewritten, refs, keyed = plan.sql_text, plan.tables, plan.uses_keyed_hash
            inputs = stored_inputs(plan)
        else:
            prepared = prepare(row.sql, scope, catalog)
            rewritten, refs, keyed = prepared.sql, prepared.tables, prepared.uses_keyed_hash
            inputs = [{"dataset": t.dataset, "table": t.table, "sql_name": t.sql_name} for t in refs]
    except PolicyError as exc:
        mismatches.append(
            context_missing(
                "query",
                f"{refused}: {exc.detail}",
                expected="accepted",
                actual="rejected",
            )
        )
        raise ReplayStopped from exc
    signed = (recorded.receipt.get("query") or {}).get("rewritten_sha256")
    digest = sha256_hex(rewritten.encode("utf-8"))
    if digest != signed:
        message = "the policy engine rewrites the recorded query differently in the rebuilt context"
        if row.catalog_versions is None:
            mismatches.append(
                context_missing(
                    "query.rewritten_sha256",
                    message + " (rebuilt partly from current versions: see notes)",
                    expected=signed,
                    actual=digest,
                )
            )
        else:
            mismatches.append(Mismatch("query.rewritten_sha256", signed, digest, message))
    missing = sorted({ref.dataset for ref in refs} - set(recorded.versions))
    if missing:
        mismatches.append(
            context_missing(
                f"datasets.{missing[0]}",
                f"the rebuilt job reads {', '.join(missing)}, and the receipt names no version of it",
            )
        )
        raise ReplayStopped
    # The job as the runner ran it, in the rebuilt context; its spec is built by the same strategy
    # (``services/job_kinds.py``), so the keys are derived from the same master key and labels (the
    # job's own id: a Python job's per-job pseudonym key is derived from it).
    job = replace(
        StoredJob.of(row),
        sql=rewritten,
        inputs=inputs,
        dataset_versions={d: v.version_id for d, v in recorded.versions.items()},
        uses_keyed_hash=keyed,
    )
    specs = JobSpecs(
        catalog=jobs.catalog,
        pseudonym_master=pseudonym_master,
        limits=limits,
        ledger=jobs.ledger,
    )
    try:
        spec = kind_of(job.kind, job.mode).spec(job, scope=scope, specs=specs)
    except (ServiceError, PolicyError) as exc:
        mismatches.append(context_missing("spec", f"the job's executor spec cannot be rebuilt: {exc.detail}"))
        raise ReplayStopped from exc
    # The sandbox's own handle: a replay is not the job.
    return Rebuilt(spec=replace(spec, job_id=f"{row.id}-replay-{secrets.token_hex(4)}"), job=job)


def _catalog(
    recorded: Recorded, scope: Scope, mismatches: list[Mismatch], notes: list[str], *, jobs: JobService
) -> Catalog:
    """The catalog the job was checked against: every dataset the scope names, at its version then."""
    row = recorded.row
    views = {ref: version_view(v) for ref, v in recorded.versions.items()}
    if row.catalog_versions is None:
        current = {ref: v for ref, v in jobs.catalog.current_versions().items() if ref not in views}
        filled = scope_catalog_versions(scope, {ref: v.version_id for ref, v in current.items()})
        views.update({ref: current[ref] for ref in filled})
        if filled:
            notes.append(
                f"job {row.id} was submitted before jobs recorded their catalog: the datasets of its "
                "scope it did not read were rebuilt at their current versions ("
                + ", ".join(f"{ref} {v}" for ref, v in sorted(filled.items()))
                + "), which may differ from those it was checked against"
            )
        return build_catalog(views)
    recorded_ids = dict(row.catalog_versions)
    with jobs.db.read() as session:
        for ref in scope_dataset_refs(scope):
            if ref in views:
                continue
            version_id = recorded_ids.get(ref)
            version = None if version_id is None else version_row(session, ref, str(version_id))
            if version is None:
                mismatches.append(
                    context_missing(
                        f"catalog.{ref}",
                        f"the catalog recorded for job {row.id} names no version of {ref}, a dataset "
                        "its scope names"
                        if version_id is None
                        else f"version {version_id} of {ref}, which the job's scope names and the job "
                        "was checked against, is not in the catalog",
                        expected=version_id,
                    )
                )
                continue
            views[ref] = version_view(version)
    return build_catalog(views)
