"""What a steward uploads with the demo data (manifests) and the demo scope a policy officer writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sandbox_api.cli.demo_data.names import (
    CITIZENS_DATASET,
    CIVIL_AFFAIRS,
    DEMO_SCOPE_NAME,
    DP_SCOPE_NAME,
    HEALTH_BUREAU,
    VISITS_DATASET,
)
from sandbox_api.cli.demo_data.vocabulary import (
    CITY_FACILITIES,
    DIAGNOSES,
    DISTRICTS,
    MAX_INCOME,
    MILITARY_HOSPITAL,
    TINY_DISTRICTS,
)

# ---------------------------------------------------------------------------------------------------
# Manifests and the demo scope
# ---------------------------------------------------------------------------------------------------


def _column(name: str, type_: str, cls: str, domain: Mapping[str, Any] | None = None) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "class": cls}
    if domain is not None:
        column["domain"] = dict(domain)
    return column


def citizens_manifest() -> dict[str, Any]:
    """What the civil-affairs steward declares for ``citizens`` (upload manifest, docs/design.md §3)."""
    districts = [name for name, _, _ in (*DISTRICTS, *TINY_DISTRICTS)]
    return {
        "tables": [
            {
                "name": "citizens",
                "unit": "person_id",
                # A register: one row per person. The upload is refused if that is not so, and
                # differential privacy needs no per-person sample of this table.
                "one_row_per_unit": True,
                "columns": [
                    _column("person_id", "VARCHAR", "identifying"),
                    _column("national_id", "VARCHAR", "identifying"),
                    _column("name", "VARCHAR", "identifying"),
                    _column("phone", "VARCHAR", "identifying"),
                    _column("birth_date", "DATE", "sensitive", {"low": "1924-01-01", "high": "2024-12-31"}),
                    _column("sex", "VARCHAR", "internal", {"categories": ["F", "M"]}),
                    _column("district", "VARCHAR", "internal", {"categories": districts}),
                    _column("income", "DOUBLE", "sensitive", {"low": 0, "high": MAX_INCOME}),
                ],
            }
        ]
    }


def visits_manifest() -> dict[str, Any]:
    """What the health-bureau steward declares for ``visits``."""
    clinics = [name for name, _, _ in (*DISTRICTS, *TINY_DISTRICTS) if name != "Military Zone"]
    facilities = [
        *(f"{name} Community Clinic" for name in clinics),
        MILITARY_HOSPITAL,
        *(name for name, _ in CITY_FACILITIES),
    ]
    return {
        "tables": [
            {
                "name": "visits",
                "unit": "person_id",
                "columns": [
                    _column("visit_id", "VARCHAR", "internal"),
                    _column("person_id", "VARCHAR", "identifying"),
                    _column("visit_date", "DATE", "sensitive", {"low": "2025-01-01", "high": "2026-12-31"}),
                    _column("facility", "VARCHAR", "internal", {"categories": sorted(facilities)}),
                    _column("diagnosis", "VARCHAR", "sensitive", {"categories": [d[0] for d in DIAGNOSES]}),
                    _column("cost", "DOUBLE", "sensitive", {"low": 0, "high": 200_000}),
                ],
            }
        ]
    }


def demo_scope_yaml(*, valid_from: date, valid_until: date, operator: str = "alice") -> str:
    """The demo scope (docs/design.md §4) over both demo datasets, granted to ``operator`` and its group.

    >>> text = demo_scope_yaml(valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31))
    >>> text.splitlines()[0]
    'scope: flu-study-2026'
    """
    return f"""\
scope: {DEMO_SCOPE_NAME}
purpose: "Seasonal influenza burden by district, and what it costs"
grantees: [operator:{operator}, group:cdc-analysts]
valid: {{from: {valid_from.isoformat()}, until: {valid_until.isoformat()}}}
datasets:
  {CIVIL_AFFAIRS}/{CITIZENS_DATASET}:
    unit: person_id
    row_filter: "district <> 'Military Zone'"
    columns:
      person_id:   {{use: join_key}}
      national_id: {{use: deny}}
      name:        {{use: deny}}
      phone:       {{use: deny}}
      birth_date:  {{mask: {{generalize: decade}}, use: group}}
      sex:         {{use: group}}
      district:    {{use: group}}
      income:      {{use: aggregate, functions: [sum, avg, count], bounds: [0, 1000000]}}
  {HEALTH_BUREAU}/{VISITS_DATASET}:
    unit: person_id
    columns:
      visit_id:    {{use: deny}}
      person_id:   {{use: join_key}}
      visit_date:  {{mask: {{generalize: month}}, use: group}}
      facility:    {{use: group}}
      diagnosis:   {{use: group}}
      cost:        {{use: aggregate, functions: [sum, avg, count], bounds: [0, 50000]}}
disclosure:
  min_units: 10
  suppression: drop
  rounding: none
  max_rows: 10000
  dp: null
python: {{allowed: true, modules: [pandas, numpy, math, statistics]}}
approvals: {{required: 2}}
"""


def dp_scope_yaml(*, valid_from: date, valid_until: date, operator: str = "alice") -> str:
    """The demo's differentially private scope (docs/dp.md): the flu study for analysts who need no
    exact numbers, with noise from OpenDP and a budget of five jobs per analyst that never comes back.

    >>> text = dp_scope_yaml(valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31))
    >>> text.splitlines()[0], "epsilon_per_job: 1.0" in text
    ('scope: flu-study-2026-dp', True)
    """
    districts = sorted(name for name, _, _ in (*DISTRICTS, *TINY_DISTRICTS) if name != "Military Zone")
    return f"""\
scope: {DP_SCOPE_NAME}
purpose: "Influenza visits and their cost by district, with differential privacy"
grantees: [operator:{operator}, group:cdc-analysts]
valid: {{from: {valid_from.isoformat()}, until: {valid_until.isoformat()}}}
datasets:
  {CIVIL_AFFAIRS}/{CITIZENS_DATASET}:
    unit: person_id
    row_filter: "district <> 'Military Zone'"
    columns:
      person_id:   {{use: join_key}}
      sex:         {{use: group}}
      district:    {{use: group}}
      income:      {{use: aggregate, functions: [sum, avg, count], bounds: [0, 200000]}}
  {HEALTH_BUREAU}/{VISITS_DATASET}:
    unit: person_id
    columns:
      person_id:   {{use: join_key}}
      diagnosis:   {{use: filter}}
      cost:        {{use: aggregate, functions: [sum, avg, count], bounds: [0, 2000]}}
disclosure:
  min_units: 10
  max_rows: 10000
  dp:
    epsilon_per_job: 1.0
    budget: 5.0
    delta: 1.0e-9
    mechanism: laplace
    refresh: none
    max_rows_per_unit: {{visits: 4}}
    max_groups_per_unit: 1
    public_groups:
      district: [{", ".join(_yaml_string(d) for d in districts)}]
      sex: [F, M]
python: {{allowed: false}}
approvals: {{required: 2}}
"""


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
