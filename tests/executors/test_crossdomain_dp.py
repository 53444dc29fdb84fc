"""Differential privacy across domains, before the noise: each domain bounds its own rows inside its
part (the policy engine's DP passes, split per domain), the private join rebuilds exactly the cells one
query over both domains' bounded rows would give, and adding or removing one person's rows on either
side moves those cells by at most the sensitivity the plan states (which the noise is scaled to)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from executors import engine
from executors.base import Limits
from executors.crossdomain import Protection
from executors.crossdomain.domain_party import new_party
from executors.crossdomain.gateway_party import SELECTED, UNITS, Gateway, Select
from executors.crossdomain.job import CrossDomainJob, DomainPartSpec
from executors.crossdomain.messages import ShareSumRequest
from executors.crossdomain.placed import gateway_selection
from executors.crossdomain.plan import Side
from executors.crossdomain.protocol import CrossDomainRun, run_in_process, run_plan
from executors.crossdomain.split import SplitQuery, split
from executors.dp_sampler import draw
from policies import prepare
from policies.catalog import Catalog, DatasetSchema
from policies.dp.cost import cost_of
from policies.dp.examples import DP_SCOPE, dp_catalog, dp_scope
from policies.dp.noise import exact_values, release_dp
from policies.dp.passes._sample import KEY_PARAMETER
from policies.dp.plan import Cell, DpPlan
from policies.model import Scope

OTHER = "labour-bureau"
#: The documentation's DP scope with visits held by another domain; citizens bounded to one row per
#: person (the other side of a joined COUNT(*) or SUM), visits to three.
SCOPE = DP_SCOPE.replace("health-bureau/visits", f"{OTHER}/visits").replace(
    "{citizens: 2, visits: 3}", "{citizens: 1, visits: 3}"
)
PUBLIC_KEYS = (
    "SELECT c.district AS district, COUNT(DISTINCT c.person_id) AS people, COUNT(*) AS n, "
    "SUM(v.cost) AS total, AVG(v.cost) AS mean FROM citizens AS c JOIN visits AS v "
    "ON c.person_id = v.person_id GROUP BY c.district"
)
KEYS_FROM_DATA = (
    "SELECT v.ward AS ward, COUNT(DISTINCT v.person_id) AS people, COUNT(*) AS n, SUM(v.cost) AS total "
    "FROM citizens AS c JOIN visits AS v ON c.person_id = v.person_id WHERE c.sex = 'F' GROUP BY v.ward"
)
COUNTED = (
    "SELECT c.district AS district, COUNT(v.cost) AS costed, COUNT(v.ward) AS warded "
    "FROM citizens AS c JOIN visits AS v ON c.person_id = v.person_id GROUP BY c.district"
)
PARAMETERS = {KEY_PARAMETER: "5a" * 32}
LIMITS = Limits(memory_mb=256, threads=1)


def _catalog() -> Catalog:
    return Catalog(
        datasets=tuple(
            DatasetSchema(domain=OTHER, name="visits", tables=d.tables) if d.name == "visits" else d
            for d in dp_catalog().datasets
        )
    )


def _scope() -> Scope:
    return dp_scope(SCOPE)


def _citizens(n: int = 160, *, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = list(range(n))
    ids += [3, 5, 8]  # three people with a second (conflicting) row: the rows bound keeps one
    return pd.DataFrame(
        {
            "person_id": pd.array(ids, dtype="int64"),
            "sex": rng.choice(["F", "M"], size=len(ids)),
            "district": rng.choice(["North", "South", "East", "West", "Military Zone"], size=len(ids)),
        }
    )


def _visits(n: int = 520, *, seed: int = 4, people: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, people, size=n)  # some visitors are not citizens
    ids[:9] = 3  # person 3 has nine visits: the rows bound keeps three
    return pd.DataFrame(
        {
            "person_id": pd.array(ids, dtype="int64"),
            "ward": rng.choice(["A", "B", "C", "D"], size=n),
            "cost": np.round(rng.uniform(0, 700, size=n), 2),  # above 500: clamped
        }
    )


def _prepared(sql: str) -> tuple[str, DpPlan, SplitQuery]:
    prepared = prepare(sql, _scope(), _catalog())
    dp = _scope().disclosure.dp
    assert prepared.dp_plan is not None
    assert dp is not None
    query = split(
        prepared.sql,
        datasets={t.sql_name: t.dataset for t in prepared.tables},
        domains={t.dataset: t.dataset.split("/", 1)[0] for t in prepared.tables},
        # As the service decides it at submit: a rows bound of 1 keeps one row per person.
        one_row={t.dataset for t in prepared.tables if dp.rows_per_unit(t.sql_name) == 1},
    )
    return prepared.sql, prepared.dp_plan, query


def _part(sql: str, name: str, rows: pd.DataFrame) -> pd.DataFrame:
    table = pa.Table.from_pandas(rows, preserve_index=False)
    out = engine.run_query(sql, {name: table}, keyed_hash_key=None, limits=LIMITS, parameters=PARAMETERS)
    return out.to_pandas()


def _across(query: SplitQuery, citizens: pd.DataFrame, visits: pd.DataFrame) -> pd.DataFrame:
    """The gateway's table: each domain's part on its own rows only, then the private join."""
    assert query.left.dataset.endswith("/citizens")
    assert query.right.dataset.endswith("/visits")
    left = _part(query.left.sql, "citizens", citizens)
    right = _part(query.right.sql, "visits", visits)
    return run_plan(query.plan, left, right, min_units=1, protection=Protection.SHARES).table


def _one_query(sql: str, citizens: pd.DataFrame, visits: pd.DataFrame) -> pd.DataFrame:
    tables = {
        "citizens": pa.Table.from_pandas(citizens, preserve_index=False),
        "visits": pa.Table.from_pandas(visits, preserve_index=False),
    }
    out = engine.run_query(sql, tables, keyed_hash_key=None, limits=LIMITS, parameters=PARAMETERS)
    return out.to_pandas()


def _quantities(table: pd.DataFrame, plan: DpPlan) -> dict[tuple[object, ...], dict[str, float]]:
    """Per cell (its keys), every noised quantity before the noise (an AVG's sum and count)."""
    keys = [c.name for c in plan.keys]
    out: dict[tuple[object, ...], dict[str, float]] = {}
    for _, row in table.iterrows():
        frame = row.to_frame().T
        values: dict[str, float] = {}
        for column in plan.noised:
            parts = ("sum", "count") if column.cell is Cell.MEAN else ("value",)
            for part in parts:
                integer = column.cell is not Cell.SUM and part != "sum"
                values[f"{column.name}.{part}"] = float(exact_values(frame, column, part, integer=integer)[0])
        out[tuple(row[k] for k in keys)] = values
    return out


@pytest.mark.parametrize(
    "sql", [PUBLIC_KEYS, KEYS_FROM_DATA, COUNTED], ids=["public-keys", "keys-from-data", "counts-of-columns"]
)
def test_the_cells_rebuilt_across_domains_equal_one_query_over_both_bounded_tables(sql: str) -> None:
    rewritten, plan, query = _prepared(sql)
    citizens, visits = _citizens(), _visits()
    across = _quantities(_across(query, citizens, visits), plan)
    single = _quantities(_one_query(rewritten, citizens, visits), plan)
    assert across.keys() == single.keys()
    for cell, values in single.items():
        assert across[cell] == pytest.approx(values, abs=1e-6), cell
    # The bounds bit: person 3's nine visits count three times at most, 'Military Zone' is filtered.
    assert ("Military Zone",) not in across


@pytest.mark.parametrize(
    "sql", [PUBLIC_KEYS, KEYS_FROM_DATA, COUNTED], ids=["public-keys", "keys-from-data", "counts-of-columns"]
)
def test_nulls_in_a_summed_column_are_cells_like_one_querys_not_a_failed_run(sql: str) -> None:
    """Under DP a summed column is a bare column, so a NULL comes from the data itself; a run that
    failed on it (and refunded the budget) said, outside the noise, that such a row was among the
    filtered rows, for instance one person's. Now a NULL adds nothing to a sum or to a mean's count, as
    in one query over both bounded tables."""
    rewritten, plan, query = _prepared(sql)
    citizens, visits = _citizens(), _visits()
    visits.loc[visits["person_id"] == 3, "cost"] = np.nan  # the heavy visitor's costs, all NULL
    visits.loc[[20, 21], "cost"] = np.nan
    across = _quantities(_across(query, citizens, visits), plan)
    single = _quantities(_one_query(rewritten, citizens, visits), plan)
    assert across.keys() == single.keys()
    for cell, values in single.items():
        assert across[cell] == pytest.approx(values, abs=1e-6), cell


def test_negative_bounds_give_one_querys_cells_and_one_person_moves_them_by_the_sensitivity() -> None:
    """Refunds as negative costs: clamped to [-200, 500] in the domain, each person's negative part
    summed in its own slot; the rebuilt cells equal one query over both bounded tables, and removing
    a person moves each cell by at most the sensitivity the plan states from the bounds."""
    scope = dp_scope(
        SCOPE.replace(
            "cost:        {use: aggregate, bounds: [0, 500]}", "cost: {use: aggregate, bounds: [-200, 500]}"
        )
    )
    prepared = prepare(PUBLIC_KEYS, scope, _catalog())
    assert prepared.dp_plan is not None
    plan = prepared.dp_plan
    query = split(
        prepared.sql,
        datasets={t.sql_name: t.dataset for t in prepared.tables},
        domains={t.dataset: t.dataset.split("/", 1)[0] for t in prepared.tables},
        one_row={t.dataset for t in prepared.tables if t.sql_name == "citizens"},
    )
    citizens, visits = _citizens(), _visits()
    visits["cost"] = np.where(visits.index % 3 == 0, -visits["cost"], visits["cost"])  # below -200: clamped
    across = _quantities(_across(query, citizens, visits), plan)
    single = _quantities(_one_query(prepared.sql, citizens, visits), plan)
    assert across.keys() == single.keys()
    for cell, values in single.items():
        assert across[cell] == pytest.approx(values, abs=1e-6), cell
    unsigned = _quantities(_across(query, citizens, visits.assign(cost=visits["cost"].abs())), plan)
    assert sum(v["total.value"] for v in across.values()) < sum(v["total.value"] for v in unsigned.values())
    after = _quantities(_across(query, citizens, _without(visits, 3)), plan)
    bound = plan.sensitivity(Cell.SUM, (-200.0, 500.0)).l1
    moved = sum(abs(after[k]["total.value"] - across[k]["total.value"]) for k in across)
    assert 0 < moved <= bound + 1e-6


def _without(rows: pd.DataFrame, person: int) -> pd.DataFrame:
    return rows[rows["person_id"] != person].reset_index(drop=True)


def _with_heavy_visitor(rows: pd.DataFrame, person: int) -> pd.DataFrame:
    extra = pd.DataFrame(
        {
            "person_id": pd.array([person] * 8, dtype="int64"),
            "ward": ["A", "B", "C", "D", "A", "B", "C", "D"],
            "cost": [10_000.0] * 8,  # far above the bound: clamped to 500
        }
    )
    return pd.concat([rows, extra], ignore_index=True)


def _with_citizen(rows: pd.DataFrame, person: int) -> pd.DataFrame:
    extra = pd.DataFrame(
        {
            "person_id": pd.array([person, person], dtype="int64"),
            "sex": ["F", "F"],
            "district": ["East", "West"],
        }
    )
    return pd.concat([rows, extra], ignore_index=True)


Neighbour = Callable[[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]
NEIGHBOURS: dict[str, Neighbour] = {
    "remove-a-heavy-person-from-the-left": lambda c, v: (_without(c, 3), v),
    "remove-a-heavy-person-from-the-right": lambda c, v: (c, _without(v, 3)),
    "remove-a-citizen-with-two-rows": lambda c, v: (_without(c, 8), v),
    "add-a-visitor-with-eight-visits-to-the-right": lambda c, v: (c, _with_heavy_visitor(v, 5)),
    "add-a-new-person-to-both-sides": lambda c, v: (_with_citizen(c, 999), _with_heavy_visitor(v, 999)),
}


@pytest.mark.parametrize(
    "sql", [PUBLIC_KEYS, KEYS_FROM_DATA, COUNTED], ids=["public-keys", "keys-from-data", "counts-of-columns"]
)
@pytest.mark.parametrize("neighbour", list(NEIGHBOURS), ids=list(NEIGHBOURS))
def test_one_person_moves_the_pre_noise_cells_by_at_most_the_stated_sensitivity(
    sql: str, neighbour: str
) -> None:
    _, plan, query = _prepared(sql)
    citizens, visits = _citizens(), _visits()
    before = _quantities(_across(query, citizens, visits), plan)
    after = _quantities(_across(query, *NEIGHBOURS[neighbour](citizens, visits)), plan)
    moved_any = False
    for column in plan.noised:
        parts = ("sum", "count") if column.cell is Cell.MEAN else ("value",)
        for part in parts:
            cell = Cell.SUM if part == "sum" else (Cell.COUNT_ROWS if part == "count" else column.cell)
            bound = plan.sensitivity(cell, column.bounds).l1
            name = f"{column.name}.{part}"
            moved = sum(
                abs(after.get(k, {}).get(name, 0.0) - before.get(k, {}).get(name, 0.0))
                for k in {*before, *after}
            )
            assert moved <= bound + 1e-6, (name, moved, bound)
            moved_any = moved_any or moved > 0
    assert moved_any  # the neighbour is one the cells notice: the bound is not met by doing nothing


def test_the_plan_states_the_product_of_both_sides_bounds() -> None:
    _, plan, _ = _prepared(PUBLIC_KEYS)
    assert plan.rows_per_unit == 1 * 3
    assert plan.sensitivity(Cell.SUM, (0.0, 500.0)).l1 == 3 * 500
    assert plan.sensitivity(Cell.COUNT_UNITS).l1 == plan.groups_per_unit == 3


DRAWS = 40_000


def test_the_gateways_noise_has_the_scale_the_preview_states() -> None:
    """The noise on rebuilt cells, drawn by OpenDP through the release function's sampler, has the
    scale the dry run states for the cross-domain plan (sensitivities from both sides' bounds).

    40,000 cells (a public domain of 40,000 keys, every cell holding the same rebuilt values): the mean
    absolute Laplace noise estimates its scale b within 0.7 % (one standard error), and the stated 95 %
    interval's coverage within 0.11 points; the tolerances (5 %, one point) are over six standard
    errors, so a correct sampler fails with probability below 1e-9 and a scale off by 10 % fails. The
    samplers cannot be seeded (``policies.dp.noise``): the bounds keep the test stable."""
    _, plan, query = _prepared(PUBLIC_KEYS)
    rebuilt = _across(query, _citizens(), _visits())
    cell = rebuilt.iloc[0]
    keys = tuple(f"d{i}" for i in range(DRAWS))
    wide = replace(plan, public_keys=(keys,))
    table = pd.DataFrame({c: [cell[c]] * DRAWS for c in rebuilt.columns}).assign(district=list(keys))
    dp = _scope().disclosure.dp
    assert dp is not None
    out = release_dp(table, wide, dp, sample=draw)
    shares = 5  # people, n, total, and mean's sum and count
    expected = {
        "total": plan.rows_per_unit * 500 * shares / dp.epsilon_per_job,
        "n": plan.rows_per_unit * shares / dp.epsilon_per_job,
    }
    for column, scale in expected.items():
        stated = out.cost.of(column)
        assert stated.scale == pytest.approx(scale)
        noise = out.noise[column].to_numpy(dtype=float)
        assert abs(float(np.mean(noise))) < 0.05 * scale
        assert float(np.mean(np.abs(noise))) == pytest.approx(scale, rel=0.05)
        coverage = float(np.mean(np.abs(noise) <= stated.half_width_95))
        assert 0.94 <= coverage <= 0.96
    assert out.exact["total"].iloc[0] == pytest.approx(float(cell["total"]))


def _with_lonely_ward(visits: pd.DataFrame) -> pd.DataFrame:
    """Ward Z has one visitor (a citizen who is a woman, so the cell exists)."""
    lonely = pd.DataFrame({"person_id": pd.array([0], dtype="int64"), "ward": ["Z"], "cost": [42.0]})
    return pd.concat([visits, lonely], ignore_index=True)


def _share_sum_sizes(run: CrossDomainRun) -> list[int]:
    requests = [m for m in run.transcript.received_by("left") if isinstance(m, ShareSumRequest)]
    return sorted(len(positions) for request in requests for _, positions in request.cells)


def _keys_from_data_run(select: Select | None) -> tuple[CrossDomainRun, DpPlan]:
    _, plan, query = _prepared(KEYS_FROM_DATA)
    # Large enough that the wards' cells (about 700 women each) pass a threshold of a few hundred.
    citizens = _citizens(3000)
    citizens.loc[citizens["person_id"] == 0, ["sex", "district"]] = ["F", "North"]
    left = _part(query.left.sql, "citizens", citizens)
    right = _part(query.right.sql, "visits", _with_lonely_ward(_visits(9000, people=3300)))
    run = run_in_process(
        new_party(query.plan, Side.LEFT, left, protection=Protection.SHARES),
        new_party(query.plan, Side.RIGHT, right, protection=Protection.SHARES),
        Gateway(query.plan, min_units=1, select=select),
    )
    return run, plan


def test_keys_from_the_data_are_chosen_before_any_cell_is_summed() -> None:
    """Attack: the domain answering the share-sum round reads each requested cell's size. Summing every
    matched cell (a threshold of 1) tells it that some cell holds one person (ward Z's lone visitor);
    with the gateway drawing OpenDP's noisy threshold first, it is asked only for the cells released."""
    exposed, _ = _keys_from_data_run(None)
    assert 1 in _share_sum_sizes(exposed)
    dp = _scope().disclosure.dp
    assert dp is not None
    _, plan, query = _prepared(KEYS_FROM_DATA)
    selection = cost_of(plan, dp).selection
    assert selection is not None
    job = CrossDomainJob(
        plan=query.plan,
        left=DomainPartSpec("health-bureau", query.left.dataset, query.left.sql, ("citizens",)),
        right=DomainPartSpec(OTHER, query.right.dataset, query.right.sql, ("visits",)),
        min_units=1,
        selection=(selection.scale, selection.threshold),
    )
    chosen, _ = _keys_from_data_run(gateway_selection(job))
    table = chosen.table
    assert table[SELECTED].all()
    assert "Z" not in set(table["ward"])  # one person: passes the threshold with probability <= delta
    assert sorted(table["ward"]) == ["A", "B", "C", "D"]  # each ~700 people: all pass (1 - 1e-9)
    assert min(table[UNITS]) > selection.threshold + 20 * selection.scale
    assert _share_sum_sizes(chosen) == sorted(table[UNITS].tolist())


def test_keys_the_gateway_chose_are_not_chosen_again_by_the_release() -> None:
    """The noisy threshold is spent once: on a table the gateway marked, the release function draws
    only the values' noise."""
    _, plan, query = _prepared(KEYS_FROM_DATA)
    dp = _scope().disclosure.dp
    assert dp is not None
    table = _across(query, _citizens(), _visits()).assign(**{SELECTED: True})
    inputs: list[object] = []

    def record(measurement: object, data: object) -> object:
        inputs.append(data)
        return data

    out = release_dp(table, plan, dp, sample=record)  # type: ignore[arg-type]
    assert not any(isinstance(data, dict) for data in inputs)  # no threshold drawn
    assert sorted(out.table["ward"]) == sorted(table["ward"])


def test_replay_sums_only_the_released_keys() -> None:
    _, _, query = _prepared(KEYS_FROM_DATA)
    job = CrossDomainJob(
        plan=query.plan,
        left=DomainPartSpec("health-bureau", query.left.dataset, query.left.sql, ("citizens",)),
        right=DomainPartSpec(OTHER, query.right.dataset, query.right.sql, ("visits",)),
        min_units=1,
        keep=(("ward",), (("B",), ("D",))),
    )
    replayed, _ = _keys_from_data_run(gateway_selection(job))
    assert sorted(replayed.table["ward"]) == ["B", "D"]
    assert len(_share_sum_sizes(replayed)) == 2


def test_under_public_domains_only_the_domains_cells_are_summed() -> None:
    """A district outside the public domain is never released, so the gateway asks no domain for its
    sums (the service passes the domain's cells as ``keep``)."""
    _, plan, query = _prepared(PUBLIC_KEYS)
    assert plan.public_keys is not None
    citizens = _citizens()
    citizens.loc[citizens["person_id"] == 3, "district"] = "Lighthouse"  # person 3 visits nine times
    left = _part(query.left.sql, "citizens", citizens)
    right = _part(query.right.sql, "visits", _visits())

    def run(select: Select | None) -> CrossDomainRun:
        return run_in_process(
            new_party(query.plan, Side.LEFT, left, protection=Protection.SHARES),
            new_party(query.plan, Side.RIGHT, right, protection=Protection.SHARES),
            Gateway(query.plan, min_units=1, select=select),
        )

    assert "Lighthouse" in set(run(None).table["district"])
    job = CrossDomainJob(
        plan=query.plan,
        left=DomainPartSpec("health-bureau", query.left.dataset, query.left.sql, ("citizens",)),
        right=DomainPartSpec(OTHER, query.right.dataset, query.right.sql, ("visits",)),
        min_units=1,
        keep=(("district",), tuple(itertools.product(*plan.public_keys))),
    )
    kept = run(gateway_selection(job))
    assert set(kept.table["district"]) == {"North", "South", "East", "West"}
    assert len(_share_sum_sizes(kept)) == 4
