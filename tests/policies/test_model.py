"""Scope model: loading, validation messages, canonical form and catalog consistency."""

from __future__ import annotations

import json
from datetime import date

import pytest

from policies import ScopeInvalid, check_scope, load_scope
from policies.examples import EXAMPLE_SCOPE, example_catalog, example_scope
from policies.model import KeywordMask, Use


def test_example_scope_loads_with_defaults() -> None:
    scope = example_scope()
    assert scope.name == "flu-study-2026"
    assert scope.datasets["health-bureau/citizens"].rule("NAME").use is Use.DENY
    assert scope.datasets["health-bureau/citizens"].rule("not_listed").use is Use.DENY
    assert check_scope(scope, example_catalog()) == ()


def test_version_id_is_stable_across_formats() -> None:
    yaml_scope = load_scope(EXAMPLE_SCOPE)
    json_scope = load_scope(yaml_scope.canonical_json(), fmt="json")
    assert json_scope.version_id == yaml_scope.version_id
    assert json.loads(yaml_scope.canonical_json())["scope"] == "flu-study-2026"


def test_version_id_changes_with_any_setting() -> None:
    changed = load_scope(EXAMPLE_SCOPE.replace("min_units: 10", "min_units: 11"))
    assert changed.version_id != example_scope().version_id


def test_typo_names_field_and_allowed_fields() -> None:
    with pytest.raises(ScopeInvalid) as raised:
        load_scope(EXAMPLE_SCOPE.replace("min_units: 10", "min_unit: 10"))
    [finding] = raised.value.findings
    assert finding.fragment == "disclosure.min_unit"
    assert "min_units" in finding.message
    assert "suppression" in finding.message


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("suppression: drop", "suppression: hide", "disclosure.suppression"),
        ("{use: filter}", "{use: maybe}", "datasets.health-bureau/citizens.columns.diagnosis.use"),
        ("operator:alice", "alice", "grantees"),
        ("until: 2026-12-31", "until: 2025-12-31", "valid"),
    ],
)
def test_invalid_values_point_at_the_field(old: str, new: str, where: str) -> None:
    with pytest.raises(ScopeInvalid) as raised:
        load_scope(EXAMPLE_SCOPE.replace(old, new))
    assert any(f.fragment.startswith(where) for f in raised.value.findings), raised.value.findings


def test_functions_only_with_aggregate_use() -> None:
    with pytest.raises(ScopeInvalid):
        load_scope(EXAMPLE_SCOPE.replace("{use: group}", "{use: group, functions: [sum]}", 1))


def test_keyword_masks_and_null_mask() -> None:
    scope = load_scope(
        EXAMPLE_SCOPE.replace("{mask: {partial: {keep_last: 2}}, use: group}", '{mask: "null", use: group}')
    )
    mask = scope.datasets["health-bureau/citizens"].columns["phone"].mask
    assert isinstance(mask, KeywordMask)
    assert mask.kind == "null"


def test_not_yaml_and_not_mapping() -> None:
    with pytest.raises(ScopeInvalid) as raised:
        load_scope("[1, 2]")
    assert raised.value.findings[0].rule == "scope_syntax"
    with pytest.raises(ScopeInvalid):
        load_scope("{", fmt="json")


def test_grantees_and_validity() -> None:
    scope = example_scope()
    assert scope.is_grantee("bob", ["cdc-analysts"])
    assert not scope.is_grantee("bob", ["other"])
    assert not scope.is_grantee("alice", [], role="auditor")
    assert scope.validity_finding(date(2026, 6, 1)) is None
    assert scope.validity_finding(date(2025, 12, 31)).rule == "scope_not_yet_valid"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("health-bureau/citizens:", "health-bureau/nope:", "scope_unknown_dataset"),
        ("sex:         {use: group}", "gender: {use: group}", "scope_unknown_column"),
        ("unit: person_id", "unit: phone", "scope_unit_mismatch"),
        ("\"district <> 'Military Zone'\"", '"nope = 1"', "scope_row_filter"),
        ("\"district <> 'Military Zone'\"", "\"regexp_matches(district, 'x')\"", "scope_row_filter"),
        (
            "{mask: {generalize: year}, use: group}",
            "{mask: {generalize: {width: 10}}, use: group}",
            "scope_mask_type",
        ),
        ("person_id:   {use: join_key}", "person_id:   {use: group}", "scope_unit_use"),
    ],
)
def test_scope_must_fit_catalog(old: str, new: str, rule: str) -> None:
    scope = load_scope(EXAMPLE_SCOPE.replace(old, new))
    assert rule in {f.rule for f in check_scope(scope, example_catalog())}
