"""aggregate() releases automatically only tables keyed by unmodified group columns of the inputs.

A SQL job cannot GROUP BY a filter or aggregate column; a Python job must not get around that by
copying such a column under a new name, or by overwriting a group column with it.
"""

from __future__ import annotations

import pytest

from executors.pyjobs import AggregateOutput, PyLimits, WithheldOutput, run_python_job

from .pyjobs_fixtures import MODULES, UNIT, people

GROUPABLE = {"people": frozenset({"district", "sex"})}  # 'age' plays a filter column, 'income' aggregate


def run_keyed(code: str) -> AggregateOutput | WithheldOutput:
    return run_python_job(
        code,
        {"people": people()},
        unit_column=UNIT,
        modules=MODULES,
        limits=PyLimits(cpu_s=5.0),
        group_columns=GROUPABLE,
    )


@pytest.mark.parametrize(
    "code",
    [
        "result = aggregate(people, by='district', aggs={'n': ('income', 'count')})",
        "result = aggregate(people, by=['district', 'sex'], aggs={'s': ('income', 'sum')})",
        # Row filters and re-ordering keep each row's original value: still a clean key.
        "p = people[people['age'] > 30].sort_values('income')\n"
        "result = aggregate(p, by='district', aggs={'n': ('income', 'count')})",
        "sexes = people[['person_id', 'sex']].drop_duplicates()\n"
        "p = people[['person_id', 'income']].merge(sexes, on='person_id')\n"
        "result = aggregate(p, by='sex', aggs={'n': ('income', 'count')})",
        # Computed row by row from group columns only: a coarser grouping a SQL job could also make.
        "p = people.assign(half=people['district'].str[0] + '-' + people['sex'].str.upper())\n"
        "result = aggregate(p, by='half', aggs={'n': ('income', 'count')})",
        "import numpy as np\n"
        "p = people.assign(side=np.where(people['district'].isin(['north', 'east']), 'NE', 'SW'))\n"
        "result = aggregate(p, by='side', aggs={'n': ('income', 'count')})",
    ],
    ids=[
        "one-key",
        "two-keys",
        "filtered-and-sorted",
        "joined-to-itself",
        "derived-from-group-columns",
        "numpy-where",
    ],
)
def test_tables_keyed_by_unmodified_group_columns_are_released(code: str) -> None:
    assert isinstance(run_keyed(code), AggregateOutput)


@pytest.mark.parametrize(
    "code",
    [
        "t = people.copy()\nt['dx'] = t['age']\n"
        "result = aggregate(t, by='dx', aggs={'n': ('income', 'count')})",
        "t = people.assign(band=people['income'] // 1000)\n"
        "result = aggregate(t, by='band', aggs={'n': ('sex', 'count')})",
        "t = people.copy()\nt['district'] = t['age'].astype(str)\n"
        "result = aggregate(t, by='district', aggs={'n': ('income', 'count')})",
        "t = people.copy()\nt['district'] = list(t['district'])[::-1]\n"
        "result = aggregate(t, by='district', aggs={'n': ('income', 'count')})",
        "t = people.assign(district=people.apply(lambda r: str(r['age']), axis=1))\n"
        "result = aggregate(t, by='district', aggs={'n': ('income', 'count')})",
    ],
    ids=[
        "renamed-copy-of-filter-column",
        "bucket-of-aggregate-column",
        "group-column-overwritten",
        "reindexed",
        "row-function-of-a-filter-column",
    ],
)
def test_tables_keyed_by_anything_else_are_withheld_with_the_reason(code: str) -> None:
    out = run_keyed(code)
    assert isinstance(out, WithheldOutput)
    assert any(f.rule == "group-key" for f in out.report.findings)
