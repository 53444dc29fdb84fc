"""The one way to build an executor ``JobSpec`` for every kind of job (SQL, Python, mock).

The pure builders (:func:`sql_spec`, :func:`python_or_mock_spec`) take everything as arguments, so replay
builds its spec with the very function the runner uses; :class:`JobSpecs` only looks up what the
stored job names (its tables' parts and keys, its pinned catalog versions for mock twins).

Keys are derived, never stored, so a replay derives them again:

* a scope's keyed-hash key (``sbx_keyed_hash`` masks): ``derive_key(master, "scope:" + scope name)``;
* a Python or mock job's pseudonym key: ``derive_key(master, "job:" + job id)``.
* a differentially private job's sampling key (``$sbx_dp_key``, which rows of each unit the bounding
  passes keep): ``derive_key(master, "dp:" + scope lineage id)``, so every job and every version of
  the scope over the same datasets keeps the same rows of each person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.pseudonym import derive_key
from executors.base import JobSpec, Limits, TableInput
from executors.pyjobs import DisclosureThresholds, PyLimits
from executors.python_job import InputQuery, MockSource, PythonOrMockJob
from policies import Scope, TableRef
from policies.cohorts import SketchRequest, lineage_of
from policies.dp.passes._sample import KEY_PARAMETER
from policies.small_groups import small_groups_statement
from sandbox_api.job_types import Kind
from sandbox_api.server.services.catalog import CatalogService
from sandbox_api.server.services.cohort_ledger import CohortLedger
from sandbox_api.server.services.mock_sources import mock_sources
from sandbox_api.server.services.policy_catalog import build_catalog
from sandbox_api.server.services.quotas import job_limits


def scope_hash_key(pseudonym_master: bytes, scope: str) -> bytes:
    """The keyed-hash key of scope ``scope`` (the same in every job under it, and in its replays)."""
    return derive_key(pseudonym_master, "scope:" + scope)


def job_pseudonym_key(pseudonym_master: bytes, job_id: str) -> bytes:
    """A Python or mock job's own pseudonym key: one token per person within the job, another in every
    other job."""
    return derive_key(pseudonym_master, "job:" + job_id)


def dp_sampling_key(pseudonym_master: bytes, lineage_id: str) -> str:
    """The ``$sbx_dp_key`` of a scope lineage (hex), bound as a parameter, never written in the SQL.

    >>> key = dp_sampling_key(b"m" * 32, "abc")
    >>> key == dp_sampling_key(b"m" * 32, "abc") != dp_sampling_key(b"m" * 32, "x")
    True
    """
    return derive_key(pseudonym_master, "dp:" + lineage_id).hex()


def sql_spec(
    *,
    job_id: str,
    sql: str,
    tables: tuple[TableInput, ...],
    scope: str,
    uses_keyed_hash: bool,
    pseudonym_master: bytes,
    limits: Limits,
    cohorts: SketchRequest | None = None,
    dp_lineage: str | None = None,
    count_small_groups: bool = False,
) -> JobSpec:
    """A SQL job on real data: the rewritten ``sql`` over ``tables`` (``cohorts``: how its sandbox
    sketches the cohorts of its rows for the released-cohort ledger; ``dp_lineage``: the scope lineage
    id of a differentially private job, whose sampling key is bound as ``$sbx_dp_key``;
    ``count_small_groups``: also count, in the sandbox, the groups the k rule removes, for the audit
    log: ``policies.small_groups``; never under differential privacy, which has no k rule).

    >>> spec = sql_spec(job_id="j1", sql="SELECT 1", tables=(), scope="flu", uses_keyed_hash=True,
    ...                 pseudonym_master=b"m" * 32, limits=Limits())
    >>> spec.keyed_hash_key == scope_hash_key(b"m" * 32, "flu"), spec.python_or_mock is None
    (True, True)
    >>> spec.small_groups_sql is None  # SELECT 1 has no k condition to count
    True
    """
    return JobSpec(
        job_id=job_id,
        sql=sql,
        tables=tables,
        keyed_hash_key=scope_hash_key(pseudonym_master, scope) if uses_keyed_hash else None,
        limits=limits,
        cohorts=cohorts,
        # Only where the rewrite sampled a table: a query over registers alone (one row per unit) has no
        # sample, and DuckDB refuses a parameter the statement does not use. The operator cannot write
        # the placeholder (the syntax check accepts it only where the engine generated it).
        parameters=None
        if dp_lineage is None or f"${KEY_PARAMETER}" not in sql
        else {KEY_PARAMETER: dp_sampling_key(pseudonym_master, dp_lineage)},
        small_groups_sql=small_groups_statement(sql) if count_small_groups and dp_lineage is None else None,
    )


def input_queries(inputs: Sequence[Mapping[str, Any]]) -> tuple[InputQuery, ...]:
    """The input SELECTs of a Python or mock job, as stored with it."""
    return tuple(
        InputQuery(
            name=str(i["sql_name"]),
            sql=str(i["sql"]),
            unit=str(i["unit"]),
            pseudonymise=stored_columns(i.get("pseudonymise")),
            group_columns=stored_columns(i.get("group_columns")),
        )
        for i in inputs
    )


def stored_columns(value: object) -> tuple[str, ...]:
    """A stored list of column names: a list, or a comma-joined string as rows stored before held.

    >>> stored_columns(["person_id", "household"]), stored_columns("person_id,household")
    (('person_id', 'household'), ('person_id', 'household'))
    >>> stored_columns(None), stored_columns("")
    ((), ())
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else ()
    return tuple(str(c) for c in items if c)


def python_or_mock_spec(
    *,
    job_id: str,
    kind: Kind,
    mock: bool,
    code: str,
    sql: str,
    inputs: Sequence[Mapping[str, Any]],
    tables: tuple[TableInput, ...],
    scope: Scope,
    uses_keyed_hash: bool,
    sources: tuple[MockSource, ...],
    pseudonym_master: bytes,
    limits: Limits,
    cohorts: SketchRequest | None = None,
    legacy_disclosure: bool = False,
) -> JobSpec:
    """A Python job, or a job of either kind on mock twins (``tables`` unused in mock mode; ``sources``
    only in mock mode). ``sql``: the operator's SQL, which a mock SQL job runs as written on the twins.
    ``cohorts``: how a real Python job's sandbox sketches its ``aggregate()`` rows for the ledger.
    ``legacy_disclosure``: the job was released under the rules before the current ones (replay only:
    ``ReleaseFacts.legacy_disclosure``).
    """
    job_key = job_pseudonym_key(pseudonym_master, job_id)
    timeout = min(limits.timeout_s, float(limits.cpu_s))
    python_or_mock = PythonOrMockJob(
        # A mock job runs SQL or Python; a cross-domain job never reaches here (real data only).
        kind="python" if kind is Kind.PYTHON else "sql",
        mode="mock" if mock else "real",
        inputs=input_queries(inputs),
        pseudonym_key=job_key,
        code=code,
        modules=tuple(scope.python.modules),
        thresholds=_thresholds(scope),
        # The language-level CPU alarm ends a runaway job with a clear reason before the sandbox's
        # wall-clock limit has to kill it.
        py_limits=PyLimits(cpu_s=max(1.0, 0.8 * timeout)),
        mock_sources=sources,
        legacy_disclosure=legacy_disclosure,
    )
    return JobSpec(
        job_id=job_id,
        sql=sql if kind is Kind.SQL else "",
        tables=() if mock else tables,
        # Mock twins are synthetic: their keyed-hash masks use the job key, never the scope's.
        keyed_hash_key=job_key
        if mock
        else (scope_hash_key(pseudonym_master, scope.name) if uses_keyed_hash else None),
        limits=limits,
        python_or_mock=python_or_mock,
        cohorts=None if mock else cohorts,
    )


def _thresholds(scope: Scope) -> DisclosureThresholds:
    """The Python runtime's thresholds: the scope's ``min_units``, and its dominance and p% settings
    where it has them (else the runtime's defaults, which ``aggregate()`` always applies)."""
    dominance = scope.disclosure.dominance
    if dominance is None:
        return DisclosureThresholds(min_units=scope.disclosure.min_units)
    return DisclosureThresholds(
        min_units=scope.disclosure.min_units,
        dominance_n=dominance.n,
        dominance_k=dominance.k,
        p_percent=dominance.p_percent,
    )


@dataclass(frozen=True)
class JobSpecs:
    """Looks up what a stored job names (table parts, pinned versions) for the pure builders."""

    catalog: CatalogService
    pseudonym_master: bytes
    limits: Limits
    ledger: CohortLedger | None = None  # None: no released-cohort ledger (unit tests of other layers)
    # Settings.audit_groups_below_k: SQL jobs also count the groups their k rule removes (for auditors).
    count_groups_below_k: bool = False

    def limits_for(self, scope: Scope) -> Limits:
        """The deployment's per-job limits, lowered (never raised) by the scope's own ``job_budget``."""
        return job_limits(
            self.limits, scope_cpu_s=scope.job_budget.cpu_s, scope_timeout_s=scope.job_budget.timeout_s
        )

    def cohorts(self, scope: Scope) -> SketchRequest | None:
        """What a SQL or Python job's sandbox needs to sketch its cohorts: scopes without differential
        privacy."""
        if self.ledger is None or scope.disclosure.dp is not None:
            return None
        return self.ledger.request(lineage_of(scope), min_units=scope.disclosure.min_units)

    def tables(
        self, inputs: Sequence[Mapping[str, Any]], dataset_versions: Mapping[str, str]
    ) -> tuple[TableInput, ...]:
        """The table inputs of a job, at the versions it was pinned to (raises ``ServiceError``)."""
        return tuple(
            self.catalog.table_input(
                dataset=str(t["dataset"]),
                version_id=dataset_versions[str(t["dataset"])],
                table=str(t["table"]),
                sql_name=str(t["sql_name"]),
            )
            for t in inputs
        )

    def mock_sources(
        self,
        inputs: Sequence[Mapping[str, Any]],
        dataset_versions: Mapping[str, str],
        *,
        legacy_twin_size: bool = False,
    ) -> tuple[MockSource, ...]:
        """The synthetic twins of a mock job's tables, from exactly the versions it was pinned to
        (``legacy_twin_size``: only to replay a job released under the old rules, ``mock_sources``)."""
        refs = [
            TableRef(dataset=str(i["dataset"]), table=str(i["table"]), sql_name=str(i["sql_name"]))
            for i in inputs
        ]
        return mock_sources(
            build_catalog(self._pinned_versions(dataset_versions)), refs, legacy_twin_size=legacy_twin_size
        )

    def _pinned_versions(self, dataset_versions: Mapping[str, str]) -> dict[str, Any]:
        out = {}
        for ref, version_id in dataset_versions.items():
            domain, name = ref.split("/", 1)
            dataset = self.catalog.get_dataset(domain, name)
            version = next((v for v in dataset.versions if v.version_id == version_id), None)
            if version is not None:
                out[ref] = version
        return out
