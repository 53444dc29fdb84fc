"""The narrated cross-domain demo: it releases what the single-process query releases, and what it
shows crossing between parties holds no unit id and no row."""

from __future__ import annotations

import duckdb
import pandas as pd

from policies import prepare
from sandbox_api.cli.demo import FLU_BY_DISTRICT
from sandbox_api.cli.demo_cross_domain import demo_catalog, demo_scope, run_demo
from sandbox_api.cli.demo_data import demo_datasets
from sandbox_api.server.services.release import Released, TableResult, release
from sandbox_api.server.services.release_facts import ReleaseFacts


def test_the_demo_narrates_one_cross_domain_job_and_releases_the_single_process_cells() -> None:
    citizens, visits = demo_datasets(citizens_n=2000, visits_n=5000, seed=11)
    tables = {"citizens": citizens.frame, "visits": visits.frame}
    lines: list[str] = []
    demo = run_demo(tables, say=lines.append)

    con = duckdb.connect()
    for name, frame in tables.items():
        con.register(name, frame)
    prepared = prepare(FLU_BY_DISTRICT, demo_scope(), demo_catalog())
    expected = release(
        TableResult(con.execute(prepared.sql).df()),
        scope=demo_scope(),
        facts=ReleaseFacts(additive_columns=prepared.additive_columns),
    )
    assert isinstance(expected, Released)
    assert sorted(map(tuple, demo.released.rows)) == sorted(map(tuple, expected.rows))

    text = "\n".join(lines)
    for step in ("runs on its own data only", "What crossed", "blinded tokens", "Released to the operator"):
        assert step in text
    units = set(citizens.frame["person_id"]) | set(visits.frame["person_id"])
    assert not any(unit in text for unit in units)
    assert pd.DataFrame(demo.released.rows, columns=demo.released.columns)["patients"].min() >= 10
