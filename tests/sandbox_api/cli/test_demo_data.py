"""The demo data: seeded, fast, realistic in the ways the product's protections are exercised by."""

from __future__ import annotations

import time
from datetime import date

import pandas as pd
import pyarrow as pa
import pytest

from policies.model import load_scope
from sandbox_api.cli import demo_data
from sandbox_api.manifest import Manifest
from sandbox_api.server.services.ingest import target_schema


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return demo_data.citizens(200_000, seed=11)


@pytest.fixture(scope="module")
def visit_log(people: pd.DataFrame) -> pd.DataFrame:
    return demo_data.visits(people, 1_000_000, seed=12)


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    first = demo_data.citizens(2_000, seed=5)
    pd.testing.assert_frame_equal(first, demo_data.citizens(2_000, seed=5))
    assert not first.equals(demo_data.citizens(2_000, seed=6))
    pd.testing.assert_frame_equal(
        demo_data.visits(first, 5_000, seed=1), demo_data.visits(first, 5_000, seed=1)
    )


def test_a_million_visits_generate_in_seconds(people: pd.DataFrame) -> None:
    started = time.perf_counter()
    demo_data.visits(people, 1_000_000, seed=3)
    # About one second on a 2-core machine; the bound leaves room for a busy CI runner.
    assert time.perf_counter() - started < 10


def test_identifiers_are_well_formed_and_unique(people: pd.DataFrame) -> None:
    assert people["person_id"].iloc[0] == "P0000001"
    assert people["person_id"].is_unique
    assert people["national_id"].is_unique
    assert people["phone"].is_unique
    assert people["phone"].str.fullmatch(r"1[35789]\d{9}").all()
    assert all(demo_data.national_id_is_valid(value) for value in people["national_id"])
    # The national ID embeds the birth date and an odd sequence number for men, even for women.
    birth = people["birth_date"].astype("datetime64[s]").dt.strftime("%Y%m%d")
    assert (people["national_id"].str.slice(6, 14) == birth).all()
    odd = people["national_id"].str.slice(16, 17).astype(int) % 2 == 1
    assert ((people["sex"] == "M") == odd).all()


def test_a_tampered_national_id_fails_its_check_character(people: pd.DataFrame) -> None:
    value = str(people["national_id"].iloc[0])
    changed = value[:5] + str((int(value[5]) + 1) % 10) + value[6:]
    assert not demo_data.national_id_is_valid(changed)
    assert not demo_data.national_id_is_valid(value[:17])


def test_districts_are_skewed_with_military_zone_and_tiny_districts(people: pd.DataFrame) -> None:
    sizes = people["district"].value_counts()
    assert sizes["Lighthouse Island"] == 6
    assert sizes["Saltmarsh"] == 14
    assert sizes["Military Zone"] > 1_000
    large = sizes.drop(["Lighthouse Island", "Saltmarsh"])
    assert large.max() > 10 * large.min()


def test_incomes_are_skewed_with_a_few_very_large_values(people: pd.DataFrame) -> None:
    ages = 2025 - people["birth_date"].astype("datetime64[s]").dt.year
    assert (people.loc[ages < 17, "income"] == 0).all()
    adults = people.loc[ages >= 25, "income"]
    assert adults.mean() > adults.median()  # right-skewed
    assert (people["income"] > 1_000_000).sum() >= 5  # what a scope's aggregate bounds must clip


def test_visits_point_at_citizens_with_heavy_users(people: pd.DataFrame, visit_log: pd.DataFrame) -> None:
    assert visit_log["visit_id"].is_unique
    assert set(visit_log["person_id"].unique()) <= set(people["person_id"])
    per_person = visit_log["person_id"].value_counts()
    assert per_person.max() >= 10 * per_person.median()


def test_visit_dates_cover_two_years_with_a_winter_peak(visit_log: pd.DataFrame) -> None:
    dates = visit_log["visit_date"].astype("datetime64[s]")
    assert dates.min() >= pd.Timestamp("2025-01-01")
    assert dates.max() <= pd.Timestamp("2026-12-31")
    by_month = dates.dt.month.value_counts()
    assert by_month[1] > 1.5 * by_month[7]
    flu = visit_log["diagnosis"] == "J11 Influenza"
    assert flu[dates.dt.month.isin([12, 1, 2])].mean() > 5 * flu[dates.dt.month.isin([6, 7, 8])].mean()


def test_rare_diagnoses_concern_fewer_people_than_a_threshold(visit_log: pd.DataFrame) -> None:
    patients = visit_log.groupby("diagnosis")["person_id"].nunique()
    assert (patients < 10).sum() >= 2
    assert patients.max() > 10_000


def test_childbirth_only_for_women_of_childbearing_age(people: pd.DataFrame, visit_log: pd.DataFrame) -> None:
    births = visit_log[visit_log["diagnosis"] == "O80 Childbirth"].merge(people, on="person_id")
    assert len(births) > 0
    assert (births["sex"] == "F").all()


@pytest.mark.parametrize(
    ("manifest", "frame_fixture"),
    [(demo_data.citizens_manifest, "people"), (demo_data.visits_manifest, "visit_log")],
)
def test_frames_match_their_manifest(
    manifest: object, frame_fixture: str, request: pytest.FixtureRequest
) -> None:
    assert callable(manifest)
    declared = Manifest.model_validate(manifest())
    (table,) = declared.tables
    frame: pd.DataFrame = request.getfixturevalue(frame_fixture)
    arrow = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    assert arrow.schema == target_schema(table)
    for column in table.columns:
        domain = column.domain
        if domain is not None and domain.categories is not None:
            assert set(frame[column.name].unique()) <= set(domain.categories), column.name
        if domain is not None and domain.low is not None and column.type == "DOUBLE":
            assert frame[column.name].between(domain.low, domain.high).all(), column.name


def test_demo_scope_is_valid_and_rules_every_column_of_both_datasets() -> None:
    scope = load_scope(demo_data.demo_scope_yaml(valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31)))
    assert scope.name == demo_data.DEMO_SCOPE_NAME
    manifests = {
        f"{demo_data.CIVIL_AFFAIRS}/{demo_data.CITIZENS_DATASET}": demo_data.citizens_manifest(),
        f"{demo_data.HEALTH_BUREAU}/{demo_data.VISITS_DATASET}": demo_data.visits_manifest(),
    }
    assert set(scope.datasets) == set(manifests)
    for ref, manifest in manifests.items():
        declared = {column["name"] for column in manifest["tables"][0]["columns"]}
        assert set(scope.datasets[ref].columns) == declared, ref


def test_the_module_examples_hold() -> None:
    # sandbox_api is outside pytest's doctest paths, so its examples are run here.
    import doctest
    import importlib
    import pkgutil

    failures = attempted = 0
    for module in pkgutil.iter_modules(demo_data.__path__):
        found = doctest.testmod(
            importlib.import_module(f"{demo_data.__name__}.{module.name}"), optionflags=doctest.ELLIPSIS
        )
        failures, attempted = failures + found.failed, attempted + found.attempted
    found = doctest.testmod(demo_data, optionflags=doctest.ELLIPSIS)
    assert attempted + found.attempted >= 5
    assert failures + found.failed == 0
