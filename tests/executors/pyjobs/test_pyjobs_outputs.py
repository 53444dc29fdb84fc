"""Output contract: what is released automatically, what is withheld, and the disclosure report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from executors.pyjobs import (
    AggregateOutput,
    DisclosureThresholds,
    NoResult,
    OutputRejected,
    PyLimits,
    WithheldOutput,
)
from policies.cell_rules import violates_dominance, violates_p_rule

from .pyjobs_fixtures import UNIT, people, run


def rules(out: WithheldOutput | AggregateOutput) -> set[str]:
    return {f.rule for f in out.report.findings if f.severity == "flag"}


def test_only_helper_tables_are_aggregate_outputs() -> None:
    forged = (
        "t = people.groupby('district').agg(n=('age', 'count')).reset_index()\n"
        "t['_sbx_units'] = 1000\nresult = t"
    )
    assert isinstance(run(forged), WithheldOutput)


def test_editing_the_helper_copy_does_not_change_what_is_released() -> None:
    code = (
        "t = aggregate(people, by='district', aggs={'n': ('age', 'count')})\n"
        "f = t.frame\nf['n'] = 0\nresult = t"
    )
    out = run(code)
    assert isinstance(out, AggregateOutput)
    expected = people().groupby("district")["age"].count()
    assert out.table.set_index("district")["n"].to_dict() == expected.to_dict()


def test_sbx_units_counts_distinct_units_and_subsets_with_missing_values() -> None:
    frame = people()
    frame.loc[frame.index[:200], "income"] = np.nan
    out = run(
        "result = aggregate(people, by=['district'], "
        "aggs={'avg': ('income', 'mean'), 'n': ('age', 'count')})",
        {"people": frame},
    )
    assert isinstance(out, AggregateOutput)
    table = out.table.set_index("district")
    assert table["_sbx_units"].to_dict() == frame.groupby("district")[UNIT].nunique().to_dict()
    with_income = frame[frame["income"].notna()].groupby("district")[UNIT].nunique()
    assert table["_sbx_units_1"].to_dict() == with_income.to_dict()
    assert "_sbx_units_2" not in table.columns  # age has no missing values


def test_each_row_lists_the_units_behind_it_for_the_ledger() -> None:
    """The cohort lists mirror the unit counts (``_sbx_cohort_<i>`` where ``_sbx_units_<i>`` is)."""
    frame = people()
    frame.loc[frame.index[:200], "income"] = np.nan
    out = run(
        "result = aggregate(people, by=['district'], "
        "aggs={'avg': ('income', 'mean'), 'n': ('age', 'count')})",
        {"people": frame},
    )
    assert isinstance(out, AggregateOutput)
    table = out.table.set_index("district")
    everyone = frame.groupby("district")[UNIT].agg(lambda u: sorted(set(u)))
    with_income = frame[frame["income"].notna()].groupby("district")[UNIT].agg(lambda u: sorted(set(u)))
    assert table["_sbx_cohort"].map(sorted).to_dict() == everyone.to_dict()
    assert table["_sbx_cohort_1"].map(sorted).to_dict() == with_income.to_dict()
    assert "_sbx_cohort_2" not in table.columns


def test_printed_output_is_withheld_and_scanned_for_pseudonyms() -> None:
    out = run(
        "print(people['person_id'].head(3).tolist())\n"
        "result = aggregate(people, by='sex', aggs={'n': ('age', 'count')})"
    )
    assert isinstance(out, AggregateOutput)
    assert out.printed is not None
    assert out.printed.printed
    assert "identifier" in rules(out.printed)


def test_print_only_job_is_withheld() -> None:
    out = run("print(people['age'].mean())")
    assert isinstance(out, WithheldOutput)
    assert out.summary is None
    assert out.printed is not None


def test_returning_the_unit_column_is_withheld_and_flagged() -> None:
    out = run("result = people[['person_id', 'age']]")
    assert isinstance(out, WithheldOutput)
    assert {"identifier", "row-level"} <= rules(out)


def test_helper_table_keyed_by_a_copy_of_the_unit_is_withheld() -> None:
    code = (
        "p = people.assign(key=people['person_id'])\n"
        "result = aggregate(p, by='key', aggs={'n': ('age', 'count')})"
    )
    out = run(code)
    assert isinstance(out, WithheldOutput)
    assert "identifier" in rules(out)


def test_small_counts_in_a_crosstab_are_flagged() -> None:
    frame = pd.DataFrame(
        {UNIT: [f"u{i}" for i in range(30)], "a": ["x"] * 28 + ["y"] * 2, "b": ["p", "q"] * 15}
    )
    out = run("import pandas as pd\nresult = pd.crosstab(people['a'], people['b'])", {"people": frame})
    assert isinstance(out, WithheldOutput)
    assert "min-count" in rules(out)


def test_large_counts_are_not_flagged() -> None:
    frame = pd.DataFrame(
        {UNIT: [f"u{i}" for i in range(400)], "a": ["x", "y"] * 200, "b": ["p"] * 200 + ["q"] * 200}
    )
    out = run("import pandas as pd\nresult = pd.crosstab(people['a'], people['b'])", {"people": frame})
    assert isinstance(out, WithheldOutput)
    assert "min-count" not in rules(out)


def test_dominance_and_p_rule_flags_withhold_a_dominated_sum() -> None:
    frame = pd.DataFrame({UNIT: [f"u{i}" for i in range(20)], "g": ["a"] * 20, "x": [1000.0] + [1.0] * 19})
    out = run("result = aggregate(people, by='g', aggs={'total': ('x', 'sum')})", {"people": frame})
    assert isinstance(out, WithheldOutput)
    assert {"dominance", "p-ratio"} <= rules(out)


def test_even_contributions_pass_dominance_and_p_rule() -> None:
    frame = pd.DataFrame(
        {UNIT: [f"u{i}" for i in range(20)], "g": ["a"] * 20, "x": [10.0 + i % 4 for i in range(20)]}
    )
    out = run("result = aggregate(people, by='g', aggs={'total': ('x', 'sum')})", {"people": frame})
    assert isinstance(out, AggregateOutput)
    assert not out.report.flagged


def test_a_sum_of_a_constant_is_withheld_with_a_reason_that_says_to_count_instead() -> None:
    """A constant cell gets the answer a cell with one exception gets (else "released" would say that
    nobody is the exception); the reason says what to do instead."""
    frame = pd.DataFrame({UNIT: [f"u{i}" for i in range(20)], "g": ["a"] * 20, "x": [10.0] * 20})
    out = run("result = aggregate(people, by='g', aggs={'total': ('x', 'sum')})", {"people": frame})
    assert isinstance(out, WithheldOutput)
    messages = [f.message for f in out.report.findings if f.rule == "few-contributors"]
    assert len(messages) == 1
    assert "count rows instead" in messages[0]


@pytest.mark.parametrize(
    ("top", "total", "flag"), [(86.0, 100.0, True), (85.0, 100.0, False), (0.0, 0.0, False)]
)
def test_dominance_rule_boundary(top: float, total: float, flag: bool) -> None:
    assert violates_dominance(top, total, k=0.85) is flag


@pytest.mark.parametrize(
    ("x1", "x2", "total", "flag"),
    [(50.0, 46.0, 100.0, True), (50.0, 40.0, 100.0, False), (0.0, 0.0, 0.0, False)],
)
def test_p_rule_boundary(x1: float, x2: float, total: float, flag: bool) -> None:
    assert violates_p_rule(x1, x2, total, p_percent=10.0) is flag


def test_model_with_few_residual_degrees_of_freedom_is_flagged() -> None:
    code = (
        "import numpy as np\nsmall = people.head(6)\n"
        "X = np.column_stack([np.ones(len(small)), small['age'].to_numpy(), small['income'].to_numpy()])\n"
        "result = np.linalg.lstsq(X, small['income'].to_numpy(), rcond=None)[0]"
    )
    out = run(code)
    assert isinstance(out, WithheldOutput)
    assert "residual-df" in rules(out)


def test_model_with_many_residual_degrees_of_freedom_is_only_noted() -> None:
    code = "import numpy as np\nresult = np.polyfit(people['age'].to_numpy(), people['income'].to_numpy(), 1)"
    out = run(code)
    assert isinstance(out, WithheldOutput)
    notes = [f for f in out.report.findings if f.rule == "residual-df"]
    assert notes
    assert notes[0].severity == "note"
    assert "598" in notes[0].message


def test_identifier_patterns_in_returned_strings_are_flagged() -> None:
    out = run("result = ['alice@example.org', '0612345678901', 'plain']")
    assert isinstance(out, WithheldOutput)
    assert "identifier" in rules(out)


def test_threshold_follows_the_scope() -> None:
    frame = pd.DataFrame({UNIT: [f"u{i}" for i in range(40)], "a": ["x"] * 35 + ["y"] * 5})
    code = "result = people['a'].value_counts().rename('n')"
    strict = run(code, {"people": frame}, thresholds=DisclosureThresholds(min_units=10))
    lenient = run(code, {"people": frame}, thresholds=DisclosureThresholds(min_units=3))
    assert "min-count" in rules(strict)
    assert "min-count" not in rules(lenient)


def test_no_result_is_an_error() -> None:
    with pytest.raises(NoResult):
        run("x = 1")


def test_unsupported_result_types_are_refused() -> None:
    with pytest.raises(OutputRejected):
        run("result = people.groupby('sex')")
    with pytest.raises(OutputRejected):
        run("def f():\n    return 1\nresult = f")


def test_oversized_result_is_refused() -> None:
    with pytest.raises(OutputRejected):
        run("result = people", limits=PyLimits(max_output_cells=100))


def test_withheld_summary_is_plain_data() -> None:
    out = run("result = {'mean': people['age'].mean(), 'by_sex': people.groupby('sex')['age'].median()}")
    assert isinstance(out, WithheldOutput)
    import json

    json.dumps(out.to_dict())  # JSON-compatible throughout


def test_an_aggregate_over_many_distinct_group_keys_is_not_mistaken_for_an_identifier() -> None:
    frame = pd.DataFrame(
        {UNIT: [f"u{i}" for i in range(600)], "district": [f"d{i % 30:02d}" for i in range(600)]}
    )
    out = run(
        "result = aggregate(people, by='district', aggs={'n': ('district', 'count')})", {"people": frame}
    )
    assert isinstance(out, AggregateOutput)
    assert len(out.table) == 30


def test_dominance_and_p_rule_cells_match_their_definitions() -> None:
    """The vectorised rules flag exactly the cells the textbook definitions flag, computed here per
    group with plain Python (several rows per unit, missing values, negative contributions)."""
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame(
        {
            UNIT: [f"u{i}" for i in rng.integers(0, 400, size=n)],
            "g": rng.choice([f"g{i:02d}" for i in range(30)], size=n),
            "x": np.where(rng.random(n) < 0.05, np.nan, rng.normal(0, 10, size=n)),
        }
    )
    for group in ("g03", "g11", "g17"):  # one unit carries these cells
        frame.loc[frame.index[(frame["g"] == group).to_numpy()][:1], "x"] = 1e6
    out = run("result = aggregate(people, by='g', aggs={'s': ('x', 'sum')})", {"people": frame})
    expected_dominance, expected_p = [], []
    for row, (_, cell) in enumerate(frame.groupby("g")):
        per_unit = cell.dropna(subset=["x"]).assign(a=lambda d: d["x"].abs()).groupby(UNIT)["a"].sum()
        ranked = sorted(per_unit.tolist(), reverse=True)
        if len(ranked) < 10:
            continue
        total = sum(ranked)
        if violates_dominance(sum(ranked[:2]), total, k=0.85):
            expected_dominance.append(row)
        if violates_p_rule(ranked[0], ranked[1], total, p_percent=10.0):
            expected_p.append(row)
    messages = {f.rule: f.message for f in out.report.findings}
    assert messages["dominance"].endswith(f"(rows {', '.join(map(str, expected_dominance))})")
    assert messages["p-ratio"].endswith(f"(rows {', '.join(map(str, expected_p))})")
    assert expected_dominance == [3, 11, 17]
