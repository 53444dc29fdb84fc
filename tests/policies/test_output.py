"""Output check: k threshold, remainder, rounding, cap, float precision, hidden columns, canonical form."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from policies import OutputInvalid, canonical_result, check_output, result_hash
from policies.model import DifferentialPrivacy, Disclosure, Rounding


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "district": ["a", "b", "c", "d"],
            "n": [50, 4, 3, 12],
            "avg_income": [1000.123456789012345, 5.0, 7.0, 9.5],
            "_sbx_units": [50, 4, 3, 12],
            "_sbx_units_1": [50, 4, 3, 2],
        }
    )


def test_drop_uses_minimum_over_all_unit_columns() -> None:
    out = check_output(_frame(), Disclosure(min_units=10))
    assert out.table["district"].tolist() == ["a"]
    assert list(out.table.columns) == ["district", "n", "avg_income"]
    assert out.report.rows_dropped == 3
    assert out.report.rows_released == 1
    assert out.report.rows_in == 4
    assert "dropped" in out.report.small_group_reasons[0]


def test_remainder_merges_counts_and_blanks_the_rest() -> None:
    frame = _frame()
    frame["_sbx_units_1"] = frame["_sbx_units"]
    out = check_output(
        frame, Disclosure(min_units=6, suppression="remainder"), additive=["n"], disjoint_groups=True
    )
    assert out.report.rows_merged == 2
    remainder = out.table.iloc[-1]
    assert remainder["n"] == 7
    assert pd.isna(remainder["district"])
    assert pd.isna(remainder["avg_income"])


def test_remainder_below_k_is_dropped_too() -> None:
    out = check_output(_frame(), Disclosure(min_units=10, suppression="remainder"), additive=["n"])
    assert out.report.rows_merged == 0
    assert out.report.rows_dropped == 3
    assert out.table["district"].tolist() == ["a"]


def test_rounding_and_float_precision() -> None:
    frame = _frame()
    frame["_sbx_units_1"] = 100
    frame["_sbx_units"] = 100
    out = check_output(frame, Disclosure(min_units=1, rounding=Rounding(base=5)), additive=["n"])
    assert out.table["n"].tolist() == [50, 5, 5, 10]
    # Every cell of the additive column, 50 too: how many values moved would say which were already
    # multiples of 5.
    assert out.report.cells_rounded == 4
    assert out.table["avg_income"].iloc[0] == pytest.approx(1000.12345679, abs=1e-9)
    assert repr(float(out.table["avg_income"].iloc[0])) == "1000.12345679"


def test_row_cap_is_reported() -> None:
    frame = pd.DataFrame({"k": range(20), "_sbx_units": [100] * 20})
    out = check_output(frame, Disclosure(min_units=1, max_rows=5))
    assert len(out.table) == 5
    assert out.report.rows_capped == 15


def test_missing_units_column_is_an_error_and_mock_skips_suppression() -> None:
    frame = pd.DataFrame({"k": [1], "n": [1]})
    with pytest.raises(OutputInvalid):
        check_output(frame, Disclosure())
    out = check_output(frame, Disclosure(), mock=True)
    assert out.report.mock
    assert len(out.table) == 1


def test_dp_configured_is_reported_not_silent() -> None:
    dp = DifferentialPrivacy(epsilon_per_job=0.5, budget=5.0)
    out = check_output(_frame(), Disclosure(min_units=1, dp=dp))
    assert any("differential privacy" in r for r in out.report.reasons)
    assert out.report.audit_dict()["rows_in"] == 4
    assert "rows_in" not in out.report.to_dict()


def test_canonical_result_is_order_independent_and_typed() -> None:
    a = pd.DataFrame({"d": [dt.date(2026, 1, 2), None], "x": [0.1 + 0.2, 1.5]})
    b = a.iloc[::-1].reset_index(drop=True)
    assert canonical_result(a) == canonical_result(b)
    assert result_hash(a) == result_hash(b)
    assert canonical_result(a)["rows"] == [["2026-01-02", "0.3"], [None, "1.5"]]
    assert canonical_result(a)["types"] == ["date", "float"]
    assert result_hash(a) != result_hash(a.assign(x=[0.3, 1.6]))


def test_rounding_never_touches_averages_or_ratios() -> None:
    frame = pd.DataFrame(
        {"n": [12, 48], "share": [0.47, 0.53], "avg_income": [1001.5, 2003.25], "_sbx_units": [12, 48]}
    )
    disclosure = Disclosure(min_units=1, rounding=Rounding(base=5))
    out = check_output(frame, disclosure, additive=["n"])
    expected = {"n": [10, 50], "share": [0.47, 0.53], "avg_income": [1001.5, 2003.25]}
    assert out.table.to_dict("list") == expected
    assert out.report.cells_rounded == 2


def test_rounding_without_additive_columns_rounds_nothing() -> None:
    frame = pd.DataFrame({"n": [12, 48], "share": [0.47, 0.53], "_sbx_units": [12, 48]})
    out = check_output(frame, Disclosure(min_units=1, rounding=Rounding(base=5)))
    assert out.table.to_dict("list") == {"n": [12, 48], "share": [0.47, 0.53]}
    assert out.report.cells_rounded == 0


def test_the_report_says_small_rows_are_withheld_before_ordering() -> None:
    frame = pd.DataFrame({"n": [12], "_sbx_units": [12]})
    for suppression in ("drop", "remainder"):
        reasons = check_output(frame, Disclosure(min_units=10, suppression=suppression)).report.to_dict()
        assert "before ordering, limits and the row cap" in str(reasons["reasons"])
