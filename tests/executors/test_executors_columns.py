"""Projection pushdown and dictionary reads: a job parses fewer columns, never gets a different answer."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pyarrow as pa
import pytest

from executors.base import JobSpec, Limits
from executors.columns import referenced_names, with_projection
from executors.engine import run_query
from executors.errors import ExecutionFailed, PartIntegrityError
from executors.local import LocalExecutor
from executors.storage import decrypt_parts, load_parts, parquet_bytes
from tests.executors.executors_contract import AGGREGATE, spec
from tests.executors.executors_fixtures import StoredVersion, visits_table

LIMITS = Limits(memory_mb=256, threads=2)

# Each reads a different subset of the columns, in shapes the pruning could get wrong.
QUERIES = [
    AGGREGATE,
    # The policy engine's row-filter shape: a pass-through SELECT * in a derived table.
    'SELECT "v"."district" AS d, COUNT(DISTINCT "v"."person_id") AS u FROM '
    "(SELECT * FROM visits WHERE cost > 100) AS v GROUP BY 1 ORDER BY 1",
    "WITH c AS (SELECT * FROM visits WHERE district <> 'district-0') "
    "SELECT COUNT(*) AS n, SUM(c.cost) AS s FROM c",
    "SELECT COUNT(*) AS n FROM visits",
    "SELECT a.district, COUNT(*) AS n FROM visits AS a JOIN visits AS b USING (person_id) "
    "GROUP BY 1 ORDER BY 1",
    "SELECT district, SUM(cost) OVER (PARTITION BY DISTRICT ORDER BY Person_Id) AS running "
    "FROM visits ORDER BY ALL LIMIT 20",
    "SELECT sbx_keyed_hash(district) AS h, COUNT(*) AS n FROM visits GROUP BY 1 ORDER BY 1",
    "SELECT COUNT(*) AS n FROM (SELECT DISTINCT * FROM visits)",
    "SELECT COUNT(*) AS n FROM (SELECT * FROM visits EXCEPT SELECT * FROM visits WHERE cost > 500)",
    "SELECT * FROM visits ORDER BY ALL LIMIT 5",
    "SELECT COLUMNS('n.*') FROM visits ORDER BY ALL LIMIT 5",
    "SELECT v FROM visits AS v ORDER BY v.person_id, v.name LIMIT 5",
    "SELECT COUNT(*) AS n FROM visits NATURAL JOIN visits AS w",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_pruned_load_gives_the_same_result_as_the_full_table(sql: str) -> None:
    table = visits_table(3_000)
    data = [parquet_bytes(table.slice(0, 1_000)), parquet_bytes(table.slice(1_000))]
    names = referenced_names(sql)
    pruned = load_parts(data, columns=names, dictionaries=True, threads=2)
    full = load_parts(data)
    key = bytes(32)
    expected = run_query(sql, {"visits": full}, keyed_hash_key=key, limits=LIMITS)
    actual = run_query(sql, {"visits": pruned}, keyed_hash_key=key, limits=LIMITS)
    assert actual.equals(expected)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM visits",
        "SELECT visits.* FROM visits",
        "SELECT * EXCLUDE (name) FROM visits",
        "SELECT COLUMNS('d.*') FROM visits",
        "SELECT COUNT(*) FROM visits NATURAL JOIN other",
        "PIVOT visits ON district USING SUM(cost)",
        "SELECT v FROM visits AS v",
        "SELECT COUNT(*) FROM (SELECT DISTINCT * FROM visits)",
        "SELECT COUNT(*) FROM (SELECT * FROM visits GROUP BY ALL)",
        "SELECT COUNT(*) FROM (SELECT * FROM visits UNION SELECT * FROM visits)",
        "SELECT cost FROM visits WHERE person_id IN (SELECT * FROM other)",
        "SELECT 1; SELECT 2",
        "SELECT FROM WHERE",
    ],
)
def test_statements_that_can_reach_unnamed_columns_load_every_column(sql: str) -> None:
    assert referenced_names(sql) is None


def test_referenced_names_cover_using_and_struct_access() -> None:
    names = referenced_names("SELECT a.s.f, COUNT(*) FROM t AS a JOIN u USING (Key_Col) GROUP BY 1")
    assert names is not None
    assert {"s", "f", "key_col"} <= names


def test_projection_is_case_insensitive_skips_unknown_names_and_keeps_the_row_count() -> None:
    data = [parquet_bytes(visits_table(400))]
    assert load_parts(data, columns=["COST", "nope"]).column_names == ["cost"]
    nothing = load_parts(data, columns=[])
    assert nothing.num_rows == 400
    assert nothing.num_columns == 1


def test_only_low_cardinality_strings_are_read_as_dictionaries() -> None:
    table = visits_table(4_000)  # 5 districts, a distinct name on every row
    loaded = load_parts([parquet_bytes(table)] * 2, dictionaries=True)
    assert pa.types.is_dictionary(loaded.schema.field("district").type)
    assert loaded.schema.field("name").type == pa.string()
    assert loaded.schema.field("person_id").type == table.schema.field("person_id").type
    # The engine sees VARCHAR either way: the same rows, the same result types.
    sql = "SELECT district, typeof(district) AS t, COUNT(*) AS n FROM visits GROUP BY ALL ORDER BY 1"
    plain = load_parts([parquet_bytes(table)] * 2)
    result = run_query(sql, {"visits": loaded}, keyed_hash_key=None, limits=LIMITS)
    assert result.equals(run_query(sql, {"visits": plain}, keyed_hash_key=None, limits=LIMITS))
    assert set(result.column("t").to_pylist()) == {"VARCHAR"}


def test_parallel_decrypt_keeps_part_order_and_still_detects_a_swap(visits: StoredVersion) -> None:
    table = visits.inputs["visits"]
    assert decrypt_parts(table, visits.data_key, threads=4) == decrypt_parts(table, visits.data_key)
    swapped = replace(table, parts=(table.parts[1], table.parts[0], *table.parts[2:]))
    with pytest.raises(PartIntegrityError) as raised:
        decrypt_parts(swapped, visits.data_key, threads=4)
    assert "part 0" in raised.value.detail


def test_with_projection_fills_only_missing_columns(visits: StoredVersion) -> None:
    job = spec(visits, AGGREGATE, job_id="p")
    filled = with_projection(job)
    assert filled.tables[0].columns is not None
    assert {"district", "person_id", "cost"} <= set(filled.tables[0].columns)
    assert "name" not in filled.tables[0].columns
    chosen = replace(job, tables=(replace(job.tables[0], columns=("district",)),))
    assert with_projection(chosen) == chosen
    everything = spec(visits, "SELECT * FROM visits", job_id="q")
    assert with_projection(everything) == everything


def test_the_sandbox_parses_only_the_columns_the_spec_names(
    local_executor: LocalExecutor, visits: StoredVersion
) -> None:
    full = local_executor.run(spec(visits, AGGREGATE, job_id="cols-auto")).to_arrow()
    job = spec(visits, AGGREGATE, job_id="cols-explicit")
    narrowed = JobSpec(
        job_id="cols-missing",
        sql=AGGREGATE,
        tables=(replace(job.tables[0], columns=("district", "person_id")),),
        keyed_hash_key=None,
        limits=job.limits,
    )
    with pytest.raises(ExecutionFailed):  # cost was not loaded, so the engine cannot bind SUM(cost)
        local_executor.run(narrowed)
    widened = replace(narrowed, job_id="cols-wide", tables=(replace(job.tables[0], columns=None),))
    assert local_executor.run(widened).to_arrow().equals(full)


def test_a_sandbox_child_switches_its_arrow_pool_away_from_mimalloc() -> None:
    # In a separate interpreter: the pool is process-wide and the test process must keep its own.
    code = (
        "import pyarrow as pa\n"
        "from executors.engine import use_job_memory_pool\n"
        "before = pa.default_memory_pool().backend_name\n"
        "use_job_memory_pool()\n"
        "print(before, pa.default_memory_pool().backend_name)\n"
    )
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env
    )
    assert out.stdout.split() in (["mimalloc", "jemalloc"], ["mimalloc", "system"])
