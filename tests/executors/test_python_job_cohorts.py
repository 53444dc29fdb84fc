"""A Python job's ``aggregate()`` rows carry the same cohort sketches a SQL job's rows would: the units
as stored (not the job's pseudonyms), under the lineage's element secret, so the released-cohort
ledger compares Python and SQL cells alike. Nothing identifying leaves the sandbox."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from executors.local import LocalExecutor
from policies.cohorts import CohortSketch, SketchRequest, element_key, sketch_of
from tests.executors.executors_fixtures import StoredVersion, visits_table
from tests.executors.test_python_job import run, spec

REQUEST = SketchRequest(secret=bytes(range(32, 64)), power_sums=11)
CODE = "result = aggregate(visits, by='district', aggs={'total': ('cost', 'sum')})"


def expected_sketches() -> dict[str, CohortSketch]:
    source = visits_table().to_pandas()
    source = source[source["cost"] < 900]
    key = element_key(REQUEST.secret)
    return {
        district: sketch_of(np.unique(group["person_id"].to_numpy()), key, REQUEST.power_sums)
        for district, group in source.groupby("district")
    }


def test_each_row_carries_the_sketch_of_its_stored_units(
    local_executor: LocalExecutor, visits: StoredVersion
) -> None:
    job = replace(spec(visits, CODE, job_id="py-cohorts"), cohorts=REQUEST)
    frame = run(local_executor, job).table.to_pandas()
    assert "_sbx_cohort" not in frame.columns
    sketches = zip(frame["district"], frame["_sbx_sketch"], strict=True)
    got = {district: CohortSketch.from_bytes(blob) for district, blob in sketches}
    assert got == expected_sketches()


@pytest.mark.parametrize("code", [CODE, CODE.replace("'cost', 'sum'", "'cost', 'mean'")])
def test_without_a_ledger_no_unit_list_leaves_the_sandbox(
    local_executor: LocalExecutor, visits: StoredVersion, code: str
) -> None:
    frame = run(local_executor, spec(visits, code, job_id="py-no-ledger")).table.to_pandas()
    assert not [c for c in frame.columns if "cohort" in c or "sketch" in c]
