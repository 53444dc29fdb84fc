"""Which group keys a DP release shows. Attack: the analyst wants to know whether anyone in the data
lives in a rare place ("Tiny", one person) from which rows appear.

With a public domain every listed key appears (empty ones too) and no other: whether "Tiny" exists in
the data changes nothing about the rows. With keys from the data, a key is shown only when its noisy
count of distinct people passes the threshold: one person's key is left out (except with probability
below the scope's delta), ten thousand people's key always appears.
"""

from __future__ import annotations

import pandas as pd
import pytest

from executors.dp_sampler import draw
from policies.dp.errors import DpResultInvalid
from policies.dp.noise import release_dp
from policies.dp.plan import Cell, DpColumn, DpPlan
from policies.model import DifferentialPrivacy

DP = DifferentialPrivacy(epsilon_per_job=1.0, budget=10.0, delta=1e-8)
COLUMNS = (DpColumn("district", Cell.KEY, 0, source="district"), DpColumn("n", Cell.COUNT_ROWS, 1))


def _exact(with_tiny: bool) -> pd.DataFrame:
    rows: dict[str, list[object]] = {
        "district": ["North", "South"],
        "n": [10_000, 8_000],
        "_sbx_units": [10_000, 8_000],
    }
    if with_tiny:
        for column, value in (("district", "Tiny"), ("n", 1), ("_sbx_units", 1)):
            rows[column].append(value)
    return pd.DataFrame(rows)


def test_a_public_domain_releases_exactly_its_keys_whoever_is_in_the_data() -> None:
    plan = DpPlan(COLUMNS, 1, 1, None, public_keys=(("East", "North", "South", "West"),))
    shown = [
        list(release_dp(_exact(tiny), plan, DP, sample=draw).table["district"]) for tiny in (True, False)
    ]
    assert shown == [["East", "North", "South", "West"]] * 2


def test_keys_from_the_data_need_enough_people_behind_them() -> None:
    plan = DpPlan(COLUMNS, 1, 1, None, public_keys=None)
    for _ in range(20):
        out = release_dp(_exact(True), plan, DP, sample=draw)
        assert list(out.table["district"]) == ["North", "South"]
        assert list(out.table.columns) == ["district", "n"]  # the unit counts stay hidden
    assert out.cost.selection is not None
    assert out.cost.delta == DP.delta


def test_the_report_names_mechanism_scale_interval_and_key_rule() -> None:
    plan = DpPlan(COLUMNS, 1, 1, None, public_keys=(("North", "South"),))
    reasons = release_dp(_exact(False), plan, DP, sample=draw).reasons()
    assert reasons[0] == "differential privacy: this job spent epsilon 1"
    assert reasons[1].startswith("n: laplace noise of scale 1 (OpenDP); 95 % of releases lie within ±")
    assert "every key of the public domain is released" in reasons[-1]


def test_a_domain_of_the_wrong_type_is_an_error_not_a_silent_empty_release() -> None:
    plan = DpPlan(COLUMNS, 1, 1, None, public_keys=((1, 2),))
    with pytest.raises(DpResultInvalid, match="public group domain"):
        release_dp(_exact(False), plan, DP, sample=draw)
