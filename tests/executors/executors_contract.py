"""The contract every ``Executor`` backend must meet, as a reusable test class.

A backend joins by subclassing ``ExecutorContract`` in a ``Test…`` class and providing an ``executor``
fixture (see ``test_executors_local.py``). Every test runs real jobs over real encrypted parts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from crypto.errors import IntegrityError
from crypto.pseudonym import keyed_hash
from executors.base import Executor, JobSpec, Limits, PartRef, TableInput
from executors.errors import (
    DataUnavailable,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionTimeout,
    PartIntegrityError,
    ResourceExhausted,
)
from tests.executors.executors_fixtures import StoredVersion, visits_table

AGGREGATE = (
    "SELECT district, COUNT(DISTINCT person_id) AS _sbx_units, COUNT(*) AS visits, SUM(cost) AS cost "
    "FROM visits GROUP BY district ORDER BY district"
)
# Runs for minutes on any machine: the tests stop it long before.
ENDLESS = "SELECT SUM(hash(i)) FROM range(100000000000) t(i)"
SMALL = Limits(timeout_s=30, memory_mb=512, cpu_s=30, threads=1)


def spec(
    stored: StoredVersion, sql: str, *, job_id: str, limits: Limits = SMALL, key: bytes | None = None
) -> JobSpec:
    return JobSpec(
        job_id=job_id, sql=sql, tables=(stored.inputs["visits"],), keyed_hash_key=key, limits=limits
    )


def run_in_thread(executor: Executor, job: JobSpec) -> tuple[threading.Thread, list[BaseException | object]]:
    outcome: list[BaseException | object] = []

    def target() -> None:
        try:
            outcome.append(executor.run(job))
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


class ExecutorContract:
    """Tests every backend must pass. Subclasses provide the ``executor`` fixture."""

    def test_aggregate_matches_bare_duckdb_on_the_plaintext(
        self, executor: Executor, visits: StoredVersion
    ) -> None:
        result = executor.run(spec(visits, AGGREGATE, job_id="contract-aggregate"))
        con = _bare(visits_table())
        expected = con.sql(AGGREGATE.replace("FROM visits", "FROM plain")).to_arrow_table()
        con.close()
        assert result.to_arrow().to_pylist() == expected.to_pylist()
        assert result.row_count == 5

    def test_result_reports_timings_and_engine(self, executor: Executor, visits: StoredVersion) -> None:
        result = executor.run(spec(visits, AGGREGATE, job_id="contract-timings"))
        assert {"unwrap", "decrypt", "load", "query"} <= set(result.timings)
        assert all(value >= 0 for value in result.timings.values())
        assert result.engine["duckdb"] == duckdb.__version__
        assert "network" in result.engine

    def test_keyed_hash_uses_the_jobs_key(self, executor: Executor, visits: StoredVersion) -> None:
        key = bytes(range(32))
        sql = "SELECT sbx_keyed_hash(district) AS token, COUNT(*) AS n FROM visits GROUP BY 1 ORDER BY 2, 1"
        rows = executor.run(spec(visits, sql, job_id="contract-hash", key=key)).to_arrow().to_pylist()
        districts = set(visits_table().column("district").to_pylist())
        assert {row["token"] for row in rows} == {keyed_hash(key, d) for d in districts}

    def test_keyed_hash_is_unavailable_without_a_key(self, executor: Executor, visits: StoredVersion) -> None:
        with pytest.raises(ExecutionFailed):
            executor.run(spec(visits, "SELECT sbx_keyed_hash(district) FROM visits", job_id="contract-nokey"))

    def test_engine_errors_carry_no_values(self, executor: Executor, visits: StoredVersion) -> None:
        with pytest.raises(ExecutionFailed) as raised:
            executor.run(
                spec(visits, "SELECT CAST(name AS INTEGER) AS x FROM visits", job_id="contract-cast")
            )
        assert "Secret-Name" not in raised.value.detail
        assert "ConversionException" in raised.value.detail

    def test_a_real_file_cannot_be_read(
        self, executor: Executor, visits: StoredVersion, tmp_path: Path
    ) -> None:
        target = tmp_path / "outside.csv"
        target.write_text("secret\nleaked-value\n")
        with pytest.raises(ExecutionFailed) as raised:
            executor.run(spec(visits, f"SELECT * FROM read_csv('{target}')", job_id="contract-file"))
        assert "leaked-value" not in raised.value.detail

    def test_timeout_stops_the_job(self, executor: Executor, visits: StoredVersion) -> None:
        started = time.monotonic()
        with pytest.raises(ExecutionTimeout):
            executor.run(
                spec(visits, ENDLESS, job_id="contract-timeout", limits=replace(SMALL, timeout_s=1.0))
            )
        assert time.monotonic() - started < 10
        self.assert_healthy(executor, visits)

    def test_cancel_stops_a_running_job(self, executor: Executor, visits: StoredVersion) -> None:
        thread, outcome = run_in_thread(executor, spec(visits, ENDLESS, job_id="contract-cancel"))
        deadline = time.monotonic() + 20
        while not executor.cancel("contract-cancel"):
            assert time.monotonic() < deadline, "the job never became cancellable"
            time.sleep(0.05)
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert isinstance(outcome[0], ExecutionCancelled)
        assert executor.cancel("contract-cancel") is False
        self.assert_healthy(executor, visits)

    def test_cancel_of_an_unknown_job_is_false(self, executor: Executor) -> None:
        assert executor.cancel("no-such-job") is False

    def test_memory_bomb_is_resource_exhausted(self, executor: Executor, visits: StoredVersion) -> None:
        bomb = "SELECT length(string_agg(repeat(name, 2000), ',')) FROM visits, range(200)"
        with pytest.raises(ResourceExhausted):
            executor.run(spec(visits, bomb, job_id="contract-bomb", limits=replace(SMALL, memory_mb=128)))
        self.assert_healthy(executor, visits)

    def test_cpu_limit_is_resource_exhausted(self, executor: Executor, visits: StoredVersion) -> None:
        limits = replace(SMALL, cpu_s=1, timeout_s=30)
        with pytest.raises(ResourceExhausted):
            executor.run(spec(visits, ENDLESS, job_id="contract-cpu", limits=limits))
        self.assert_healthy(executor, visits)

    def test_tampered_part_names_the_part(
        self, executor: Executor, visits: StoredVersion, tmp_path: Path
    ) -> None:
        table = visits.inputs["visits"]
        blob = bytearray(Path(table.parts[2].path).read_bytes())
        blob[40] ^= 0x01
        copy = tmp_path / "part-00002.enc"
        copy.write_bytes(bytes(blob))
        parts = (*table.parts[:2], PartRef(path=str(copy), aad=table.parts[2].aad), *table.parts[3:])
        job = JobSpec(
            job_id="contract-tamper",
            sql=AGGREGATE,
            tables=(replace(table, parts=parts),),
            keyed_hash_key=None,
            limits=SMALL,
        )
        with pytest.raises(PartIntegrityError) as raised:
            executor.run(job)
        assert isinstance(raised.value, IntegrityError)
        assert "part 2" in raised.value.detail

    def test_wrong_key_context_is_refused(self, executor: Executor, visits: StoredVersion) -> None:
        table: TableInput = replace(visits.inputs["visits"], key_aad=b"health-bureau/visits/another-version")
        job = JobSpec(
            job_id="contract-key", sql=AGGREGATE, tables=(table,), keyed_hash_key=None, limits=SMALL
        )
        with pytest.raises((PartIntegrityError, DataUnavailable)):
            executor.run(job)

    def test_concurrent_jobs_all_complete(self, executor: Executor, visits: StoredVersion) -> None:
        runs = [
            run_in_thread(executor, spec(visits, AGGREGATE, job_id=f"contract-many-{i}")) for i in range(4)
        ]
        for thread, _ in runs:
            thread.join(timeout=60)
        assert all(outcome and not isinstance(outcome[0], BaseException) for _, outcome in runs)

    @staticmethod
    def assert_healthy(executor: Executor, visits: StoredVersion) -> None:
        result = executor.run(spec(visits, AGGREGATE, job_id=f"contract-healthy-{time.monotonic_ns()}"))
        assert result.row_count == 5


def _bare(table: pa.Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.register("plain", table)
    return con
