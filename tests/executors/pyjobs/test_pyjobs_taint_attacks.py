"""Attacks that launder one person's value through a column that depends on other rows into
``aggregate()``, which releases automatically. The fact wanted: the income (or the diagnosis) of the
only person aged 95 in 'north' (see ``attack_fixture``).

Every job below was released automatically before the runtime tracked where columns come from: the
``aggregate()`` table went out after the k check, and for the broadcast attacks the released mean by
sex was the target's income to the cent. Now each is withheld for an output checker, and the
disclosure report names the operation that made the column depend on other rows.
"""

from __future__ import annotations

import pytest

from executors.pyjobs import AggregateOutput, WithheldOutput

from .attack_fixture import Attack, received, run, shows_target_income

BY_SEX = "\nresult = aggregate(people, by='sex', aggs={'m': ('x', 'mean')})"
TARGET = "(people['age'] == 95) & (people['district'] == 'north')"  # a condition true for one person
# The target is also the oldest person: attacks that test another mechanism reach them by order.
OLDEST = "people.sort_values('age', ascending=False)"

POSITIONAL: list[Attack] = [
    Attack("iloc_broadcast", f"people['x'] = {OLDEST}['income'].iloc[0]" + BY_SEX, ".iloc"),
    Attack("iat_first_row", "people['x'] = people['income'].iat[0]" + BY_SEX, ".iat"),
    Attack("head_after_sort", f"people['x'] = {OLDEST}['income'].head(1).sum()" + BY_SEX, ".head"),
    Attack(
        "tail_after_sort", "people['x'] = people.sort_values('age')['income'].tail(1).sum()" + BY_SEX, ".tail"
    ),
    Attack(
        "idxmax_then_loc",
        "i = people['age'].idxmax()\npeople['x'] = people.loc[i, 'income']" + BY_SEX,
        ".idxmax",
    ),
    Attack(
        "positional_array_reversed",
        "people['x'] = people['income'].to_numpy()[::-1]" + BY_SEX,
        "positional",
    ),
    Attack(
        "literal_list_marks_a_row",
        "s = people.sort_values('age')\ns['x'] = [0.0] * 199 + [1.0]\n"
        "result = aggregate(s, by='district', aggs={'m': ('x', 'mean')})",
        "positional",
    ),
]

REDUCTIONS: list[Attack] = [
    Attack("max_broadcast", "people['x'] = people['income'].max()" + BY_SEX, ".max"),
    Attack("mean_of_filtered_frame", f"people['x'] = people[{TARGET}]['income'].mean()" + BY_SEX, "singles"),
    Attack(
        "sum_of_filtered_frame",
        "people['x'] = people.loc[people['age'] >= people['age'].max(), 'income'].sum()" + BY_SEX,
        ".max",
    ),
    Attack(
        "quantile_threshold",
        "people['x'] = people['income'].where(people['income'] >= people['income'].quantile(0.999), 0)"
        + BY_SEX,
        ".quantile",
    ),
    Attack("len_of_filtered_frame", "people['x'] = len(people[people['age'] > 30]) * 1.0" + BY_SEX, "len"),
    Attack("numpy_max", "import numpy as np\npeople['x'] = np.max(people['income'])" + BY_SEX, "numpy.max"),
    Attack(
        "numpy_sort_positional",
        "import numpy as np\npeople['x'] = np.sort(people['income'].to_numpy())" + BY_SEX,
        "numpy.sort",
    ),
]

CROSS_ROW: list[Attack] = [
    Attack(
        "group_transform",
        "people['x'] = people.groupby('age')['income'].transform('max')" + BY_SEX,
        "groupby",
    ),
    Attack(
        "shift",
        "s = people.sort_values('age', ascending=False)\ns['x'] = s['income'].shift(-199)"
        "\nresult = aggregate(s, by='sex', aggs={'m': ('x', 'mean')})",
        ".shift",
    ),
    Attack("cumsum", "people['x'] = people['income'].cumsum()" + BY_SEX, ".cumsum"),
    Attack("rank", "people['x'] = people['income'].rank()" + BY_SEX, ".rank"),
    Attack("rolling", "people['x'] = people['income'].rolling(2).max()" + BY_SEX, ".rolling"),
    Attack(
        "ffill", "people['x'] = people['income'].where(people['age'] > 30).ffill().bfill()" + BY_SEX, ".ffill"
    ),
    Attack(
        "apply_along_columns",
        "people['x'] = people[['income', 'age']].apply(lambda c: c.max())['income']" + BY_SEX,
        ".apply",
    ),
    Attack("pipe", "people['x'] = people.pipe(lambda d: d['income'].max())" + BY_SEX, ".max"),
    Attack(
        "assign_callable",
        "p = people.assign(x=lambda d: d['income'].max())\n"
        "result = aggregate(p, by='sex', aggs={'m': ('x', 'mean')})",
        ".max",
    ),
]

LOOKUPS: list[Attack] = [
    Attack(
        "map_with_dict_built_from_data",
        "lookup = dict(zip(people['age'], people['income']))\n"
        "people['x'] = people['age'].map(lambda a: lookup[95])" + BY_SEX,
        "zip",
    ),
    Attack(
        "map_with_series_from_data",
        "by_person = people.set_index('person_id')['income']\n"
        "people['x'] = people['person_id'].map(by_person)" + BY_SEX,
        ".map",
    ),
    Attack(
        "dict_filled_in_a_loop",
        "d = {}\nfor a, i in zip(people['age'], people['income']):\n    d[a] = i\npeople['x'] = d[95]"
        + BY_SEX,
        "zip",
    ),
    Attack(
        "merge_fans_out_on_a_non_unit_key",
        f"t = people[{TARGET}][['district', 'income']].rename(columns={{'income': 'x'}})\n"
        "m = people.merge(t, on='district')\nresult = aggregate(m, by='sex', aggs={'m': ('x', 'mean')})",
        ".merge",
    ),
    Attack(
        "concat_duplicates_the_target",
        "import pandas as pd\nc = pd.concat([people, people[people['age'] > 30]])\n"
        "result = aggregate(c, by='district', aggs={'m': ('income', 'sum')})",
        "pandas.concat",
    ),
    Attack(
        "aggregate_frame_merged_back",
        "t = aggregate(people, by='district', aggs={'top': ('income', 'max')}).frame\n"
        "m = people.merge(t, on='district')\nm['x'] = m['top']\n"
        "result = aggregate(m, by='sex', aggs={'m': ('x', 'mean')})",
        ".frame",
    ),
]

CONTROL: list[Attack] = [
    Attack(
        "python_loop_accumulates",
        "total = 0.0\nfor v in people['income'].tolist():\n    total = max(total, v)\npeople['x'] = total"
        + BY_SEX,
        ".tolist",
    ),
    Attack(
        "closure_over_a_reduction",
        "top = people['income'].max()\ndef f(v):\n    return top\npeople['x'] = people['income'].map(f)"
        + BY_SEX,
        ".max",
    ),
    Attack(
        "callback_keeps_state",
        "seen = []\ndef f(v):\n    seen.append(v)\n    return float(len(seen))\n"
        "people['x'] = people['income'].map(f)" + BY_SEX,
        "state",
    ),
    Attack(
        "branch_on_a_diagnosis",
        f"dx = {OLDEST}['diagnosis'].iloc[0]\nif dx == 'rare-x':\n    people['x'] = 1.0\n"
        "else:\n    people['x'] = 0.0" + BY_SEX,
        "branch",
    ),
    Attack(
        "diagnosis_written_as_zero_one",
        f"dx = {OLDEST}['diagnosis'].iloc[0]\npeople['x'] = int(dx == 'rare-x') * 1.0" + BY_SEX,
        ".iloc",
    ),
    Attack(
        "exception_as_a_branch",
        f"dx = {OLDEST}['diagnosis'].iloc[0]\ntry:\n    v = {{'rare-x': 1.0}}[dx]\n"
        "except KeyError:\n    v = 0.0\npeople['x'] = v" + BY_SEX,
        ".iloc",
    ),
    Attack(
        "formatted_into_a_group_key",
        f"inc = {OLDEST}['income'].iloc[0]\npeople['g'] = f'band-{{inc}}'\n"
        "result = aggregate(people, by='g', aggs={'n': ('age', 'count')})",
        ".iloc",
    ),
    Attack(
        "percent_formatting_into_a_group_key",
        f"inc = {OLDEST}['income'].iloc[0]\npeople['g'] = 'band-%s' % inc\n"
        "result = aggregate(people, by='g', aggs={'n': ('age', 'count')})",
        ".iloc",
    ),
    Attack(
        "helper_function_hides_the_reduction",
        "def top(frame):\n    return frame['income'].max()\npeople['x'] = top(people)" + BY_SEX,
        ".max",
    ),
    Attack(
        "tainted_row_filter",
        "people['x'] = people['income']\n"
        "sel = people[people['income'] >= people['income'].max()]\n"
        "result = aggregate(sel, by='sex', aggs={'m': ('x', 'mean')})",
        ".max",
    ),
]

IN_PLACE: list[Attack] = [
    Attack(
        "update_in_place",
        "other = people[['income']].copy()\nother['income'] = people['income'].max()\npeople.update(other)\n"
        "people['x'] = people['income']" + BY_SEX,
        ".max",
    ),
    Attack("insert_in_place", "people.insert(0, 'x', people['income'].max())" + BY_SEX, ".max"),
    Attack(
        "where_with_a_function",
        "people['x'] = people['income'].where(lambda s: s >= s.max(), 0.0)" + BY_SEX,
        ".where",
    ),
    Attack("apply_by_name", "people['x'] = people['income'].apply('cumsum')" + BY_SEX, ".apply"),
    Attack(
        "method_chosen_by_data",
        f"dx = {OLDEST}['diagnosis'].iloc[0]\n"
        "pick = getattr(people['income'], {'rare-x': 'max'}.get(dx, 'min'))\npeople['x'] = pick()" + BY_SEX,
        "attribute",
    ),
]

ATTACKS = POSITIONAL + REDUCTIONS + CROSS_ROW + LOOKUPS + CONTROL + IN_PLACE


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_a_value_depending_on_other_rows_is_not_released_automatically(attack: Attack) -> None:
    out = run(attack.code)
    assert received(out) is None, "released automatically"
    assert isinstance(out, WithheldOutput)
    taints = [f for f in out.report.findings if f.rule == "row-dependence"]
    assert taints, "the report does not say the result depends on other rows"
    assert any(attack.taint in f.message for f in taints), [f.message for f in taints]
    assert all(f.severity == "flag" for f in taints)


def test_the_broadcast_attack_would_reveal_the_income_if_released() -> None:
    """The judge is not vacuous: the same column, released, is the target's income."""
    out = run(f"people['x'] = people.loc[{TARGET}, 'income'].iloc[0]" + BY_SEX)
    assert isinstance(out, WithheldOutput)
    assert out.summary is not None
    import pandas as pd

    table = pd.DataFrame(out.summary["rows"], columns=out.summary["columns"])  # type: ignore[call-overload]
    assert shows_target_income(table)


def test_a_sum_dominated_by_the_target_is_withheld() -> None:
    """The target's income is most of 'north''s total: dominance and p% flags withhold the table."""
    out = run("result = aggregate(people, by='district', aggs={'total': ('income', 'sum')})")
    assert not isinstance(out, AggregateOutput)
    assert {"dominance", "p-ratio"} <= {f.rule for f in out.report.findings if f.severity == "flag"}


def test_a_literal_list_in_numpy_where_is_positional() -> None:
    code = (
        "import numpy as np\ns = people.sort_values('age')\n"
        "s['x'] = np.where(s['age'] > 40, [0.0] * 199 + [1.0], 0.0)"
    )
    out = run(code + "\nresult = aggregate(s, by='district', aggs={'m': ('x', 'mean')})")
    assert isinstance(out, WithheldOutput)
    assert any("positional" in f.message for f in out.report.findings if f.rule == "row-dependence")


def test_everyone_but_the_target_is_not_released_next_to_everyone() -> None:
    """Two jobs: counts by sex of everyone, and of everyone except the only person aged 95. Their
    difference is the target's sex. The first is released; the second is withheld, because its
    condition is false for one person only."""
    everyone = run("result = aggregate(people, by='sex', aggs={'n': ('age', 'count')})")
    but_one = run(
        "rest = people[people['age'] != 95]\nresult = aggregate(rest, by='sex', aggs={'n': ('age', 'count')})"
    )
    assert received(everyone) is not None
    assert received(but_one) is None
    assert isinstance(but_one, WithheldOutput)
    assert any("singles them out" in f.message for f in but_one.report.findings)


@pytest.mark.parametrize(
    "code",
    [
        "people['x'] = people['income'].where(people['age'] == 95, 0.0)",
        "people['x'] = people['income'] * (people['age'] == 95)",
    ],
    ids=["where", "times-a-condition"],
)
def test_a_value_kept_for_one_person_only_is_withheld(code: str) -> None:
    out = run(code + "\nresult = aggregate(people, by='sex', aggs={'top': ('x', 'max')})")
    assert received(out) is None
    assert any("singles them out" in f.message for f in out.report.findings if f.rule == "row-dependence")


def test_a_numeric_indicator_of_one_person_is_caught_by_dominance() -> None:
    """No condition at all: ``max(0, age - 94)`` is 1 for the target and 0 for everyone else. The
    column is row-local, so only the cell rules can stop it: one unit carries the whole column."""
    code = (
        "import numpy as np\npeople['x'] = people['income'] * np.maximum(0, people['age'] - 94)\n"
        "result = aggregate(people, by='sex', aggs={'top': ('x', 'max')})"
    )
    out = run(code)
    assert received(out) is None
    assert not [f for f in out.report.findings if f.rule == "row-dependence"]
    assert {"dominance", "p-ratio"} <= {f.rule for f in out.report.findings if f.severity == "flag"}


@pytest.mark.parametrize(
    "condition",
    [
        TARGET,  # true for exactly the target
        "people['age'] == 200",  # true for nobody
        f"~({TARGET})",  # false for exactly the target
        "people['age'] >= 0",  # false for nobody
    ],
)
def test_whether_a_condition_singles_someone_out_does_not_change_the_outcome(condition: str) -> None:
    """The fact wanted: does a person aged 95 live in 'north'? A condition true (or false) for one person
    and one true (or false) for nobody must give the operator the same outcome, or "released" against
    "withheld" answers the question. Both are withheld: a condition that splits the people into a side
    of fewer than k (none included) taints what it touches."""
    code = f"people['x'] = people['income'].where({condition}, 0.0)" + BY_SEX
    out = run(code)
    assert isinstance(out, WithheldOutput)
    assert any("fewer than" in f.message for f in out.report.findings if f.rule == "row-dependence")
