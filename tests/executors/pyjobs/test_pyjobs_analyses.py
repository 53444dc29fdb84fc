"""Legitimate analyses run under the restrictions and give the results plain pandas/numpy give."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pandas as pd
import pytest

from executors.pyjobs import AggregateOutput, WithheldOutput

from .pyjobs_fixtures import UNIT, people, run


def summary(out: object) -> Any:
    assert isinstance(out, WithheldOutput)
    assert out.summary is not None
    return out.summary


def table(out: object) -> pd.DataFrame:
    plain = summary(out)
    assert plain["type"] == "table"
    return pd.DataFrame(plain["rows"], columns=plain["columns"])


def released(out: object) -> pd.DataFrame:
    assert isinstance(out, AggregateOutput)
    return out.table


def test_group_statistics_with_the_helper() -> None:
    out = released(
        run(
            "result = aggregate(people, by=['district', 'sex'], aggs={"
            "'n': ('age', 'count'), 'mean_income': ('income', 'mean'), 'median_age': ('age', 'median'),"
            "'sd_income': ('income', 'std')})"
        )
    )
    frame = people()
    for (district, sex), group in frame.groupby(["district", "sex"]):
        row = out[(out["district"] == district) & (out["sex"] == sex)].iloc[0]
        assert row["n"] == len(group)
        assert row["mean_income"] == pytest.approx(sum(group["income"]) / len(group))
        assert row["median_age"] == pytest.approx(statistics.median(group["age"].tolist()))
        assert row["sd_income"] == pytest.approx(statistics.stdev(group["income"].tolist()))
        assert row["_sbx_units"] == len(set(group[UNIT]))


def test_crosstab_counts() -> None:
    out = table(run("import pandas as pd\nresult = pd.crosstab(people['district'], people['sex'])"))
    frame = people()
    for _, row in out.iterrows():
        for sex in ("f", "m"):
            expected = sum(
                1
                for d, s in zip(frame["district"], frame["sex"], strict=True)
                if d == row["district"] and s == sex
            )
            assert row[sex] == expected


def test_linear_regression_with_lstsq() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, 300)
    frame = pd.DataFrame(
        {UNIT: [f"u{i}" for i in range(300)], "x": x, "y": 3.0 + 2.0 * x + rng.normal(0, 0.1, 300)}
    )
    code = (
        "import numpy as np\n"
        "X = np.column_stack([np.ones(len(people)), people['x'].to_numpy()])\n"
        "coef, residuals, rank, sv = np.linalg.lstsq(X, people['y'].to_numpy(), rcond=None)\n"
        "result = {'intercept': float(coef[0]), 'slope': float(coef[1]), 'rank': int(rank)}"
    )
    out = run(code, {"people": frame})
    assert isinstance(out, WithheldOutput)
    assert out.summary is not None
    values = {k: v["value"] for k, v in summary(out)["items"]}
    # Independent: the normal equations.
    design = np.column_stack([np.ones(300), x])
    expected = np.linalg.solve(design.T @ design, design.T @ frame["y"].to_numpy())
    assert values["intercept"] == pytest.approx(expected[0])
    assert values["slope"] == pytest.approx(expected[1])
    assert values["rank"] == 2
    assert values["slope"] == pytest.approx(2.0, abs=0.01)


def test_buckets_with_edges_written_in_the_code_are_released() -> None:
    code = (
        "import pandas as pd\n"
        "edges = [0, 3000, 6000, 10000]\n"
        "bands = pd.cut(people['income'], edges, labels=['low', 'mid', 'high'])\n"
        "p = people.assign(bucket=bands.astype(str))\n"
        "result = aggregate(p, by='bucket', aggs={'n': ('income', 'count'), 'low': ('income', 'min')})"
    )
    out = released(run(code))
    income = people()["income"]
    expected = {
        "low": int((income <= 3000).sum()),
        "mid": int(((income > 3000) & (income <= 6000)).sum()),
        "high": int((income > 6000).sum()),
    }
    assert out.set_index("bucket")["n"].to_dict() == expected
    assert out.set_index("bucket")["low"]["low"] == income.min()


def test_quantile_buckets_depend_on_other_rows_and_are_withheld() -> None:
    """qcut's edges are quantiles of every row: a bucket says where a person stands among the others."""
    code = (
        "import pandas as pd\n"
        "labels = ['q1', 'q2', 'q3', 'q4']\n"
        "p = people.assign(bucket=pd.qcut(people['income'], 4, labels=labels).astype(str))\n"
        "result = aggregate(p, by='bucket', aggs={'n': ('income', 'count'), 'low': ('income', 'min')})"
    )
    out = run(code)
    assert isinstance(out, WithheldOutput)
    assert any(
        "pandas.qcut at line 3" in f.message for f in out.report.findings if f.rule == "row-dependence"
    )
    rows = {r[0]: r[1] for r in summary(out)["rows"]}
    income = people()["income"].to_numpy()
    edges = np.percentile(income, [0, 25, 50, 75, 100])
    assert rows["q1"] == int((income <= edges[1]).sum())


def test_derived_column_and_loc_assignment() -> None:
    code = (
        "people['band'] = 'young'\n"
        "people.loc[people['age'] >= 50, 'band'] = 'older'\n"
        "result = aggregate(people, by='band', aggs={'n': ('age', 'count')})"
    )
    out = released(run(code))
    ages = people()["age"]
    assert out.set_index("band")["n"].to_dict() == {
        "older": int((ages >= 50).sum()),
        "young": int((ages < 50).sum()),
    }


def test_correlation_matrix() -> None:
    out = table(run("result = people[['age', 'income']].corr()"))
    frame = people()
    expected = np.corrcoef(frame["age"], frame["income"])[0, 1]
    assert out.set_index("index").loc["age", "income"] == pytest.approx(expected)


def test_statistics_module_regression() -> None:
    out = run(
        "import statistics\n"
        "fit = statistics.linear_regression(people['age'].tolist(), people['income'].tolist())\n"
        "result = [fit.slope, fit.intercept]"
    )
    assert isinstance(out, WithheldOutput)
    assert out.summary is not None
    slope, intercept = (item["value"] for item in summary(out)["items"])
    frame = people()
    expected_slope, expected_intercept = np.polyfit(frame["age"], frame["income"], 1)
    assert slope == pytest.approx(expected_slope)
    assert intercept == pytest.approx(expected_intercept)


def test_monthly_counts_from_dates() -> None:
    code = (
        "p = people.assign(month=people['visit'].dt.month)\n"
        "result = aggregate(p, by='month', aggs={'visits': ('age', 'count')})"
    )
    out = released(run(code))
    months = [v.month for v in people()["visit"]]
    assert out.set_index("month")["visits"].to_dict() == {m: months.count(m) for m in set(months)}


def test_python_loop_over_groups_with_math() -> None:
    code = (
        "import math\n"
        "out = {}\n"
        "for name, group in people.groupby('district'):\n"
        "    total = 0.0\n"
        "    for value in group['income'].tolist():\n"
        "        total += math.log(value)\n"
        "    out[name] = total / len(group)\n"
        "result = out"
    )
    out = run(code)
    assert isinstance(out, WithheldOutput)
    assert out.summary is not None
    got = {k: v["value"] for k, v in summary(out)["items"]}
    frame = people()
    for district, group in frame.groupby("district"):
        assert got[district] == pytest.approx(sum(np.log(group["income"])) / len(group))


def test_zscore_within_groups_depends_on_other_rows_and_is_withheld() -> None:
    code = (
        "g = people.groupby('district')['income']\n"
        "people['z'] = (people['income'] - g.transform('mean')) / g.transform('std')\n"
        "result = aggregate(people, by='district', aggs={'mean_z': ('z', 'mean'), 'sd_z': ('z', 'std')})"
    )
    out = run(code)
    assert isinstance(out, WithheldOutput)
    messages = [f.message for f in out.report.findings if f.rule == "row-dependence"]
    assert messages == ["column 'z' depends on other rows: groupby at line 1"]
    rows = pd.DataFrame(summary(out)["rows"], columns=summary(out)["columns"])
    assert rows["mean_z"].abs().max() == pytest.approx(0.0, abs=1e-9)
    assert rows["sd_z"].tolist() == pytest.approx([1.0] * 4)


def test_string_methods_and_merge() -> None:
    regions = pd.DataFrame({"district": ["north", "south", "east", "west"], "region": ["N", "S", "E", "W"]})
    code = (
        "m = people.merge(regions, on='district', how='left')\n"
        "m['label'] = m['region'].str.lower() + '-' + m['sex'].str.upper()\n"
        "result = aggregate(m, by='label', aggs={'avg_age': ('age', 'mean')})"
    )
    out = released(run(code, {"people": people(), "regions": regions}))
    frame = people()
    frame["label"] = frame["district"].str[0] + "-" + frame["sex"].str.upper()
    expected = {k: sum(v) / len(v) for k, v in frame.groupby("label")["age"].apply(list).items()}
    assert out.set_index("label")["avg_age"].to_dict() == pytest.approx(expected)


def test_histogram_with_numpy() -> None:
    out = run(
        "import numpy as np\ncounts, edges = np.histogram(people['age'].to_numpy(), bins=[18, 40, 60, 90])\n"
        "result = counts.tolist()"
    )
    assert isinstance(out, WithheldOutput)
    assert out.summary is not None
    got = [item["value"] for item in summary(out)["items"]]
    ages = people()["age"]
    assert got == [
        int(((ages >= 18) & (ages < 40)).sum()),
        int(((ages >= 40) & (ages < 60)).sum()),
        int(((ages >= 60) & (ages <= 90)).sum()),
    ]
