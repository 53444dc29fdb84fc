"""Replay of a DP job compares its group keys by type, not as text.

Attack (why): the sealed record is JSON, and a ``DATE`` key has no JSON type. Sealing a release keyed by
dates failed outright (``json.dumps`` refused the date), and the cross-domain replay chose the cells to
sum by comparing keys as text, so a ``DATE`` cell matched the text ``'2026-03-01'`` and an integer key
matched the text that reads like it. Now keys are written tagged and read back with their type; replay
compares them by type, and the release rebuilt from the record hashes like the original.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from executors.crossdomain import Aggregate, CrossDomainPlan, Function, SidePlan
from executors.crossdomain.job import CrossDomainJob, DomainPartSpec
from executors.crossdomain.placed import gateway_selection
from policies import result_hash
from policies.dp.cost import cost_of
from policies.dp.keys import released_frame, same_key
from policies.dp.noise import DpRelease
from policies.dp.plan import Cell, DpColumn, DpPlan
from policies.dp.replay import replay_problems, sealed_record
from policies.model import DifferentialPrivacy

DAY, NEXT = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
PLAN = DpPlan((DpColumn("day", Cell.KEY, 0), DpColumn("n", Cell.COUNT_ROWS, 1)), 1, 1, None, ((DAY, NEXT),))
DP = DifferentialPrivacy(epsilon_per_job=1, budget=4)


def _through_json(record: dict[str, object]) -> dict[str, object]:
    """What the settlement seals and the replay unseals."""
    loaded: dict[str, object] = json.loads(json.dumps(record, separators=(",", ":")))
    return loaded


def _record() -> dict[str, object]:
    exact = pd.DataFrame({"day": [DAY, NEXT], "n": [40, 12]})
    noise = pd.DataFrame({"n": [1, -2]})
    released = exact.assign(n=[41, 10])
    return sealed_record(DpRelease(released, exact[["n"]], noise, cost_of(PLAN, DP)))


def test_a_release_keyed_by_dates_can_be_sealed_and_reads_back_as_dates() -> None:
    sealed = _through_json(_record())
    frame = released_frame(sealed)
    assert list(frame["day"]) == [DAY, NEXT]
    original = pd.DataFrame({"day": [DAY, NEXT], "n": [41, 10]})
    assert result_hash(frame) == result_hash(original)  # the replayed release's bytes are the original's


def test_replay_matches_date_keys_as_dates() -> None:
    rerun = pd.DataFrame({"day": [NEXT, DAY], "n": [12, 40]})
    assert replay_problems(rerun, PLAN, _through_json(_record())) == []
    moved = pd.DataFrame({"day": [NEXT, DAY], "n": [12, 39]})
    assert replay_problems(moved, PLAN, _through_json(_record())) != []


def test_the_cross_domain_replay_chooses_cells_by_typed_keys() -> None:
    """The released keys (a date, an integer) come back from the record typed; a cell keyed by the text
    that reads the same is another cell, and is not summed."""
    plan = CrossDomainPlan(
        SidePlan("u", group_by=("day",), one_row=True),
        SidePlan("u", group_by=("ward",)),
        (Aggregate("n", Function.COUNT_UNITS),),
    )
    recorded = released_frame(_through_json({"released": {"day": [{"date": "2026-03-01"}], "ward": [7]}}))
    job = CrossDomainJob(
        plan=plan,
        left=DomainPartSpec("a", "a/x", "", ("x",)),
        right=DomainPartSpec("b", "b/y", "", ("y",)),
        min_units=1,
        keep=(("day", "ward"), tuple(recorded.itertuples(index=False, name=None))),
    )
    select = gateway_selection(job)
    assert select is not None
    cells = [((DAY, 7), 5), (("2026-03-01", 7), 5), ((DAY, "7"), 5), ((NEXT, 7), 5), ((DAY, 7.0), 5)]
    assert sorted(select(cells)) == [0, 4]


def test_keys_compare_by_type() -> None:
    assert same_key(DAY, DAY)
    assert not same_key(DAY, "2026-03-01")
    assert not same_key(pd.Timestamp("2026-03-01"), DAY)
    assert same_key(pd.Timestamp("2026-03-01 08:00"), dt.datetime(2026, 3, 1, 8))
    assert not same_key(1, "1")
    assert not same_key(True, 1)
    assert same_key(None, float("nan"))
