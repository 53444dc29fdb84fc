"""Classification levels: each floor of each default level refuses the scope that goes below it.

The scope under test is the design's example (docs/design.md §4) over its catalog; each case changes
one thing and names the one floor that must catch it.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.catalog import Catalog, ColumnSchema, DatasetSchema, TableSchema
from policies.errors import ScopeInvalid
from policies.examples import example_catalog, example_scope
from policies.levels import DEFAULT_LEVELS, Levels, level_findings, load_levels
from policies.model import Scope


def catalog_at(level: str | None) -> Catalog:
    base = example_catalog()
    dataset = base.datasets[0]
    tables = tuple(t.model_copy(update={"level": level}) for t in dataset.tables)
    return Catalog(datasets=(dataset.model_copy(update={"tables": tables}),))


def scope_with(**changes: Any) -> Scope:
    """The example scope with some fields replaced (dotted paths into its JSON form)."""
    document = example_scope().model_dump(mode="json", by_alias=True, exclude_none=True)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = document
        for part in parents:
            node = node[part]
        node[last] = value
    return Scope.model_validate(document)


def rules(scope: Scope, level: str | None) -> set[str]:
    return {f.rule for f in level_findings(scope, catalog_at(level), DEFAULT_LEVELS)}


COLUMNS = "datasets__health-bureau/citizens__columns"


def test_the_example_scope_meets_the_default_level() -> None:
    assert rules(example_scope(), None) == set()
    assert DEFAULT_LEVELS.default == "L3"


def test_an_identifying_column_granted_plain_is_refused() -> None:
    # The attack: before levels, a scope could grant `plain` on a name and nothing said a word.
    scope = scope_with(**{f"{COLUMNS}__name": {"use": "plain"}})
    found = level_findings(scope, catalog_at("L3"), DEFAULT_LEVELS)
    assert [f.rule for f in found] == ["level_column_use"]
    assert "identifying column 'name' may not be granted plain" in found[0].message
    assert found[0].fragment == "datasets.health-bureau/citizens.columns.name"


def test_an_identifying_column_shown_needs_a_mask() -> None:
    scope = scope_with(**{f"{COLUMNS}__phone": {"use": "group"}})
    assert rules(scope, "L3") == {"level_mask_required"}
    assert rules(scope, "L1") == set()


@pytest.mark.parametrize(
    ("level", "min_units", "expected"),
    [("L1", 1, set()), ("L2", 4, {"level_min_units"}), ("L2", 5, set()), ("L3", 9, {"level_min_units"})],
)
def test_min_units_floor(level: str, min_units: int, expected: set[str]) -> None:
    assert rules(scope_with(disclosure__min_units=min_units), level) == expected


def test_highly_sensitive_data_needs_dp_no_python_three_approvals_and_k_20() -> None:
    found = level_findings(example_scope(), catalog_at("L4"), DEFAULT_LEVELS)
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {
        "level_min_units",
        "level_dp_required",
        "level_python_not_allowed",
        "level_approvals",
        "level_mask_required",  # diagnosis (sensitive) as a filter without a mask
        "level_column_use",  # phone (identifying) as a group key, even masked: join keys only
    }
    assert "at least 20 (the scope sets 10)" in by_rule["level_min_units"].message
    assert by_rule["level_dp_required"].fragment == "disclosure.dp"


def test_a_scope_that_meets_every_l4_floor_passes() -> None:
    scope = scope_with(
        disclosure__min_units=20,
        disclosure__dp={"epsilon_per_job": 0.5, "budget": 5.0},
        python={"allowed": False, "modules": []},
        approvals={"required": 3},
        **{
            f"{COLUMNS}__diagnosis": {"use": "filter", "mask": {"generalize": {"prefix": 1}}},
            f"{COLUMNS}__phone": {"use": "deny"},
        },
    )
    assert rules(scope, "L4") == set()


def test_a_level_the_deployment_does_not_define_is_refused() -> None:
    assert rules(example_scope(), "L9") == {"level_unknown"}


def test_the_strictest_floor_wins_across_datasets() -> None:
    other = TableSchema(
        name="register",
        unit="pid",
        level="L4",
        columns=(ColumnSchema(name="pid", type="VARCHAR", cls="identifying"),),
    )
    catalog = Catalog(
        datasets=(*catalog_at("L1").datasets, DatasetSchema(domain="civil", name="register", tables=(other,)))
    )
    scope = scope_with(**{"datasets__civil/register": {"columns": {"pid": {"use": "join_key"}}}})
    found = {f.rule for f in level_findings(scope, catalog, DEFAULT_LEVELS)}
    assert {"level_min_units", "level_dp_required"} <= found


def test_a_deployment_defines_its_own_levels() -> None:
    levels = load_levels(
        """
default: restricted
levels:
  open: {title: open data, floor: {min_units: 1}}
  restricted:
    title: restricted
    floor: {min_units: 15, uses: {identifying: [join_key]}, dp: false, python: false}
"""
    )
    found = {f.rule for f in level_findings(example_scope(), catalog_at(None), levels)}
    assert found == {"level_min_units", "level_python_not_allowed", "level_column_use"}


def test_a_levels_document_with_an_undefined_default_is_refused() -> None:
    with pytest.raises(ScopeInvalid) as raised:
        load_levels("default: L9\nlevels: {L1: {title: public}}")
    assert [f.rule for f in raised.value.findings] == ["levels_invalid"]


def test_a_typo_in_a_floor_is_an_error() -> None:
    with pytest.raises(ScopeInvalid):
        load_levels("default: L1\nlevels: {L1: {title: public, floor: {min_unit: 3}}}")


def test_levels_round_trip_through_json() -> None:
    assert load_levels(DEFAULT_LEVELS.model_dump_json(), fmt="json") == DEFAULT_LEVELS
    assert isinstance(DEFAULT_LEVELS, Levels)
