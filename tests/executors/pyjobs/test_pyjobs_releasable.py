"""Ordinary pandas analyses are released automatically when every column they aggregate is row-local
and every cell passes: named aggregation with ``nunique`` on the unit, merges on the unit, boolean
masks, ``.dt.year``, helper functions, loops over columns, element-wise numpy and pandas. Each
expected value is computed here with plain Python over the same rows.

Before, none of these was releasable: ``aggregate()`` refused ``nunique`` on the unit, and several
keys derived from group columns (a year, a coarser area) were sent to a checker.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pandas as pd
import pytest

from executors.pyjobs import AggregateOutput, PyLimits, run_python_job

from .pyjobs_fixtures import MODULES, UNIT, people

GROUPABLE = {"people": frozenset({"district", "sex", "visit"}), "persons": frozenset({"region"})}


def persons() -> pd.DataFrame:
    """One row per unit of ``people``, with a region and a yearly allowance."""
    units = sorted(set(people()[UNIT]))
    return pd.DataFrame(
        {
            UNIT: units,
            "region": ["inland" if i % 3 else "coast" for i in range(len(units))],
            "allowance": [100.0 + (i % 7) * 10 for i in range(len(units))],
        }
    )


def released(code: str) -> pd.DataFrame:
    out = run_python_job(
        code,
        {"people": people(), "persons": persons()},
        unit_column=UNIT,
        modules=MODULES,
        limits=PyLimits(cpu_s=10.0),
        group_columns=GROUPABLE,
    )
    assert isinstance(out, AggregateOutput), [f.message for f in out.report.findings]
    return out.table


def rows() -> list[dict[str, object]]:
    return list(people().to_dict("records"))


def test_named_aggregation_with_distinct_units() -> None:
    table = released(
        "result = aggregate(people, by='sex', "
        "aggs={'n': ('person_id', 'nunique'), 'avg': ('income', 'mean')})"
    )
    units: dict[str, set[object]] = defaultdict(set)
    incomes: dict[str, list[float]] = defaultdict(list)
    for row in rows():
        units[str(row["sex"])].add(row[UNIT])
        incomes[str(row["sex"])].append(float(row["income"]))  # type: ignore[arg-type]
    got = table.set_index("sex")
    for sex in ("f", "m"):
        assert got.loc[sex, "n"] == len(units[sex]) == got.loc[sex, "_sbx_units"]
        assert got.loc[sex, "avg"] == pytest.approx(sum(incomes[sex]) / len(incomes[sex]))


def test_merge_on_the_unit() -> None:
    table = released(
        "m = people.merge(persons, on='person_id', how='left')\n"
        "result = aggregate(m, by='region', "
        "aggs={'visits': ('income', 'count'), 'allowance': ('allowance', 'sum')})"
    )
    region = dict(zip(persons()[UNIT], persons()["region"], strict=True))
    allowance = dict(zip(persons()[UNIT], persons()["allowance"], strict=True))
    visits: dict[str, int] = defaultdict(int)
    total: dict[str, float] = defaultdict(float)
    for row in rows():
        visits[region[row[UNIT]]] += 1
        total[region[row[UNIT]]] += allowance[row[UNIT]]
    got = table.set_index("region")
    assert got["visits"].to_dict() == dict(visits)
    assert got["allowance"].to_dict() == pytest.approx(dict(total))


def test_boolean_masks() -> None:
    table = released(
        "adults = people[(people['age'] >= 30) & (people['income'] > 2000)]\n"
        "adults = adults[~adults['district'].isin(['west'])]\n"
        "result = aggregate(adults, by='district', aggs={'n': ('age', 'count'), 'top': ('income', 'max')})"
    )
    kept = [r for r in rows() if r["age"] >= 30 and r["income"] > 2000 and r["district"] != "west"]  # type: ignore[operator]
    got = table.set_index("district")
    assert sorted(got.index) == ["east", "north", "south"]
    for district in got.index:
        mine = [r for r in kept if r["district"] == district]
        assert got.loc[district, "n"] == len(mine)
        assert got.loc[district, "top"] == max(float(r["income"]) for r in mine)  # type: ignore[arg-type]


def test_year_of_a_date() -> None:
    table = released(
        "p = people.assign(year=people['visit'].dt.year, month=people['visit'].dt.month)\n"
        "result = aggregate(p[p['month'] <= 6], by='year', aggs={'visits': ('age', 'count')})"
    )
    expected = sum(1 for r in rows() if r["visit"].month <= 6)  # type: ignore[attr-defined]
    assert table.set_index("year")["visits"].to_dict() == {2024: expected}


def test_helper_function_and_loop_over_columns() -> None:
    table = released(
        "def in_thousands(values):\n"
        "    return values / 1000\n"
        "for column in ['income', 'age']:\n"
        "    people[column + '_k'] = in_thousands(people[column])\n"
        "result = aggregate(people, by='district', "
        "aggs={'income_k': ('income_k', 'mean'), 'age_k': ('age_k', 'max')})"
    )
    got = table.set_index("district")
    for district in ("east", "north", "south", "west"):
        mine = [r for r in rows() if r["district"] == district]
        incomes = [float(r["income"]) / 1000 for r in mine]  # type: ignore[arg-type]
        assert got.loc[district, "income_k"] == pytest.approx(math.fsum(incomes) / len(incomes))
        assert got.loc[district, "age_k"] == pytest.approx(max(int(r["age"]) / 1000 for r in mine))  # type: ignore[call-overload]


def test_element_wise_numpy_and_pandas() -> None:
    table = released(
        "import numpy as np\n"
        "p = people.assign(\n"
        "    band=np.where(people['district'].isin(['north', 'south']), 'NS', 'EW'),\n"
        "    log_income=np.log(people['income']),\n"
        "    capped=people['income'].clip(upper=8000).where(people['age'] > 20, 0.0)"
        ".fillna(0.0).astype(float),\n"
        "    short=people['district'].map({'north': 'N', 'south': 'S', 'east': 'E', 'west': 'W'}),\n"
        "    ratio=lambda d: d.apply(lambda r: r['income'] / r['age'], axis=1),\n"
        ")\n"
        "result = aggregate(p, by=['band', 'sex'], "
        "aggs={'log': ('log_income', 'mean'), 'capped': ('capped', 'sum'),"
        " 'ratio': ('ratio', 'median'), 'n': ('short', 'count')})"
    )
    for (band, sex), group in table.groupby(["band", "sex"]):
        mine = [
            r
            for r in rows()
            if ("NS" if r["district"] in ("north", "south") else "EW") == band and r["sex"] == sex
        ]
        incomes = [float(r["income"]) for r in mine]  # type: ignore[arg-type]
        capped = [min(i, 8000.0) if int(r["age"]) > 20 else 0.0 for i, r in zip(incomes, mine, strict=True)]  # type: ignore[call-overload]
        ratios = sorted(i / int(r["age"]) for i, r in zip(incomes, mine, strict=True))  # type: ignore[call-overload]
        middle = len(ratios) // 2
        median = ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2
        row = group.iloc[0]
        assert row["log"] == pytest.approx(math.fsum(math.log(i) for i in incomes) / len(incomes))
        assert row["capped"] == pytest.approx(math.fsum(capped))
        assert row["ratio"] == pytest.approx(median)
        assert row["n"] == len(mine)


def test_loc_assignment_with_a_row_local_mask() -> None:
    table = released(
        "people['band'] = 'young'\n"
        "people.loc[people['age'] >= 50, 'band'] = 'older'\n"
        "result = aggregate(people, by='sex', aggs={'older': ('band', 'count'), 'mean_age': ('age', 'mean')})"
    )
    got = table.set_index("sex")
    for sex in ("f", "m"):
        mine = [r for r in rows() if r["sex"] == sex]
        assert got.loc[sex, "older"] == len(mine)
        assert got.loc[sex, "mean_age"] == pytest.approx(sum(int(r["age"]) for r in mine) / len(mine))  # type: ignore[call-overload]


def test_select_and_a_loop_over_the_columns() -> None:
    table = released(
        "import numpy as np\n"
        "p = people.copy()\n"
        "for name, column in p[['income', 'age']].items():\n"
        "    p[name + '_twice'] = column * 2\n"
        "p['area'] = np.select([p['district'] == 'north', p['district'] == 'south'], ['N', 'S'], 'other')\n"
        "p = p[[c for c in p.columns if c != 'name']]\n"
        "aggs = {'n': ('age_twice', 'count'), 'total': ('income_twice', 'sum')}\n"
        "result = aggregate(p, by='area', aggs=aggs)"
    )
    counts: dict[str, int] = defaultdict(int)
    totals: dict[str, float] = defaultdict(float)
    for row in rows():
        area = {"north": "N", "south": "S"}.get(str(row["district"]), "other")
        counts[area] += 1
        totals[area] += 2 * float(row["income"])  # type: ignore[arg-type]
    got = table.set_index("area")
    assert got["n"].to_dict() == dict(counts)
    assert got["total"].to_dict() == pytest.approx(dict(totals))
