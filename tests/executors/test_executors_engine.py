"""Defence in depth, tried directly on the engine (no policy in front): every escape must fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crypto.pseudonym import keyed_hash
from executors.base import Limits
from executors.engine import open_locked, open_spare, run_query
from executors.errors import ExecutionFailed, ResourceExhausted
from executors.warmup import warm_sandbox

LIMITS = Limits(memory_mb=256, threads=1)
PEOPLE = pa.table({"pid": [1, 2, 3, 4], "name": ["Alice-Secret", "Bob", None, "Bob"]})


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Real files an attacker would like to read or write."""
    (tmp_path / "secret.csv").write_text("col\nexfiltrated-value\n")
    pq.write_table(pa.table({"col": ["exfiltrated-value"]}), tmp_path / "secret.parquet")
    return tmp_path


@pytest.fixture(params=["fresh", "warm"])
def locked(request: pytest.FixtureRequest) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked engine opened for the job, or a warm sandbox's engine opened and walked beforehand."""
    spare = None
    if request.param == "warm":
        spare = open_spare()
        warm_sandbox(spare)
    con = open_locked({"people": PEOPLE}, keyed_hash_key=None, limits=LIMITS, spare=spare)
    yield con
    con.close()


ATTACKS = {
    "read_csv": "SELECT * FROM read_csv('{d}/secret.csv')",
    "read_csv_auto": "SELECT * FROM read_csv_auto('{d}/secret.csv')",
    "read_parquet": "SELECT * FROM read_parquet('{d}/secret.parquet')",
    "bare path": "SELECT * FROM '{d}/secret.parquet'",
    "read_text": "SELECT * FROM read_text('{d}/secret.csv')",
    "glob": "SELECT * FROM glob('{d}/*')",
    "copy to": "COPY people TO '{d}/out.csv'",
    "copy from": "COPY people FROM '{d}/secret.csv'",
    "export": "EXPORT DATABASE '{d}/export'",
    "attach": "ATTACH '{d}/other.db' AS other",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "http": "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
    "https csv": "SELECT * FROM read_csv('https://example.com/x.csv')",
    "s3": "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "set external access": "SET enable_external_access = true",
    "unlock": "SET lock_configuration = false",
    "reset lock": "RESET lock_configuration",
    "raise memory": "SET memory_limit = '64GB'",
    "pragma threads": "PRAGMA threads = 64",
    "temp directory": "SET temp_directory = '{d}'",
    "allow unsigned": "SET allow_unsigned_extensions = true",
    "secret": "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
}


@pytest.mark.parametrize("sql", ATTACKS.values(), ids=ATTACKS.keys())
def test_escape_attempts_fail_on_the_locked_engine(
    locked: duckdb.DuckDBPyConnection, outside: Path, sql: str
) -> None:
    with pytest.raises(duckdb.Error):
        locked.execute(sql.format(d=outside)).fetchall()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv", "secret.parquet"]


@pytest.mark.parametrize("sql", list(ATTACKS.values())[:6], ids=list(ATTACKS)[:6])
def test_escape_errors_reach_the_caller_without_file_contents(outside: Path, sql: str) -> None:
    with pytest.raises(ExecutionFailed) as raised:
        run_query(sql.format(d=outside), {"people": PEOPLE}, keyed_hash_key=None, limits=LIMITS)
    assert "exfiltrated-value" not in raised.value.detail
    assert str(outside) not in raised.value.detail


def test_python_variables_are_not_scanned_by_name(locked: duckdb.DuckDBPyConnection) -> None:
    # DuckDB's default replacement scan would find this variable in the calling frame by its name.
    secret_frame = pa.table({"col": ["from-a-python-variable"]})
    assert secret_frame.num_rows == 1
    with pytest.raises(duckdb.CatalogException):
        locked.sql("SELECT * FROM secret_frame").fetchall()


def test_settings_are_locked_and_verified(locked: duckdb.DuckDBPyConnection) -> None:
    settings = dict(
        locked.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoload_known_extensions', 'autoinstall_known_extensions', 'threads', "
            "'memory_limit', 'temp_directory')"
        ).fetchall()
    )
    assert settings == {
        "enable_external_access": "false",
        "lock_configuration": "true",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
        "threads": "1",
        "memory_limit": "256.0 MiB",
        "temp_directory": "",
    }


def test_registered_tables_stay_queryable(locked: duckdb.DuckDBPyConnection) -> None:
    assert locked.sql("SELECT COUNT(DISTINCT name) FROM people").fetchall() == [(2,)]


def test_engine_error_text_never_carries_values() -> None:
    with pytest.raises(ExecutionFailed) as raised:
        run_query(
            "SELECT CAST(name AS INTEGER) FROM people", {"people": PEOPLE}, keyed_hash_key=None, limits=LIMITS
        )
    assert "Alice" not in raised.value.detail
    assert raised.value.detail.startswith("the query failed in the engine: ConversionException;")
    assert "dry-run" in raised.value.detail


def test_memory_limit_is_a_clean_resource_error() -> None:
    bomb = "SELECT length(string_agg(repeat('x', 10000), ',')) FROM range(1000000)"
    with pytest.raises(ResourceExhausted):
        run_query(bomb, {}, keyed_hash_key=None, limits=LIMITS)


def test_keyed_hash_matches_crypto_and_keeps_nulls() -> None:
    key = bytes(range(32))
    out = run_query(
        "SELECT pid, sbx_keyed_hash(name) AS token FROM people ORDER BY pid",
        {"people": PEOPLE},
        keyed_hash_key=key,
        limits=LIMITS,
    ).to_pylist()
    assert [row["token"] for row in out] == [
        keyed_hash(key, "Alice-Secret"),
        keyed_hash(key, "Bob"),
        None,
        keyed_hash(key, "Bob"),
    ]


def test_keyed_hash_is_absent_without_a_key() -> None:
    with pytest.raises(ExecutionFailed):
        run_query(
            "SELECT sbx_keyed_hash(name) FROM people", {"people": PEOPLE}, keyed_hash_key=None, limits=LIMITS
        )


STATEMENTS = {
    "shadowing macro": "CREATE MACRO sbx_keyed_hash(x) AS x; SELECT sbx_keyed_hash(name) FROM people",
    "two selects": "SELECT 1; SELECT name FROM people",
    "create table": "CREATE TABLE copy AS SELECT * FROM people",
    "pragma": "PRAGMA version",
    "explain": "EXPLAIN SELECT * FROM people",
}


@pytest.mark.parametrize("sql", STATEMENTS.values(), ids=STATEMENTS.keys())
def test_only_one_select_statement_runs(sql: str) -> None:
    with pytest.raises(ExecutionFailed):
        run_query(sql, {"people": PEOPLE}, keyed_hash_key=None, limits=LIMITS)


def test_a_warm_engine_holds_only_the_jobs_tables(locked: duckdb.DuckDBPyConnection) -> None:
    # The warm-up's synthetic table is gone; only what the job registered can be named.
    assert locked.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall() == [("people",)]
    with pytest.raises(duckdb.CatalogException):
        locked.sql("SELECT COUNT(*) FROM sbx_warm_up").fetchall()


def test_a_warm_engine_takes_the_jobs_memory_limit_and_runs_the_query_on_one_thread() -> None:
    spare = open_spare()
    warm_sandbox(spare)
    limits = Limits(memory_mb=300, threads=2)
    con = open_locked({"people": PEOPLE}, keyed_hash_key=bytes(32), limits=limits, spare=spare)
    try:
        settings = con.sql("SELECT current_setting('threads'), current_setting('memory_limit')").fetchall()
        # One thread whatever the job's threads: float aggregates must replay bit for bit.
        assert settings == [(1, "300.0 MiB")]
        assert con.sql("SELECT COUNT(DISTINCT sbx_keyed_hash(name)) FROM people").fetchall() == [(2,)]
    finally:
        con.close()
