"""Seeded, realistic demo data for the two demo domains, generated without the network.

``citizens`` is the civil-affairs register (one row per person); ``visits`` is the health-bureau's
record of clinic visits (many rows per person). Both are built column-wise with numpy and assembled as
Arrow arrays, so a million visits take about a second; the same seed always gives the same frame.

The data is shaped to exercise the product rather than to be pretty: district sizes are skewed and
include a ``Military Zone`` (which the demo scope filters out) and two tiny districts (which the output
check must suppress), incomes are log-normal with a handful of very large values (which aggregate bounds
must clip), a few people visit very often (so counting visits is not counting people) and some
diagnoses are rare (so a naive group-by would single people out).

>>> people = citizens(1_000, seed=1)
>>> people.shape, people["person_id"].iloc[0]
((1000, 8), 'P0000001')
>>> all(national_id_is_valid(value) for value in people["national_id"])
True
>>> visits(people, 5_000, seed=1).shape
(5000, 6)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sandbox_api.cli.demo_data.columns import national_id_is_valid
from sandbox_api.cli.demo_data.health import visits
from sandbox_api.cli.demo_data.manifests import (
    citizens_manifest,
    demo_scope_yaml,
    dp_scope_yaml,
    visits_manifest,
)
from sandbox_api.cli.demo_data.names import (
    CITIZENS_DATASET,
    CIVIL_AFFAIRS,
    DEFAULT_SEED,
    DEMO_SCOPE_NAME,
    DP_SCOPE_NAME,
    HEALTH_BUREAU,
    VISITS_DATASET,
)
from sandbox_api.cli.demo_data.people import citizens

__all__ = [
    "CITIZENS_DATASET",
    "CIVIL_AFFAIRS",
    "DEFAULT_SEED",
    "DEMO_SCOPE_NAME",
    "DP_SCOPE_NAME",
    "HEALTH_BUREAU",
    "VISITS_DATASET",
    "DemoDataset",
    "citizens",
    "citizens_manifest",
    "demo_datasets",
    "demo_scope_yaml",
    "dp_scope_yaml",
    "national_id_is_valid",
    "visits",
    "visits_manifest",
]


@dataclass(frozen=True)
class DemoDataset:
    """One demo dataset: where it lives, its table and the manifest a steward uploads with it."""

    domain: str
    name: str
    description: str
    table: str
    frame: pd.DataFrame
    manifest: Mapping[str, Any]


def demo_datasets(
    *, citizens_n: int = 200_000, visits_n: int = 1_000_000, seed: int = DEFAULT_SEED
) -> tuple[DemoDataset, DemoDataset]:
    """Both demo datasets, generated from one seed, with their manifests."""
    people = citizens(citizens_n, seed=seed)
    return (
        DemoDataset(
            domain=CIVIL_AFFAIRS,
            name=CITIZENS_DATASET,
            description="Citizen register: one row per resident",
            table="citizens",
            frame=people,
            manifest=citizens_manifest(),
        ),
        DemoDataset(
            domain=HEALTH_BUREAU,
            name=VISITS_DATASET,
            description="Clinic and hospital visits, 2025-2026",
            table="visits",
            frame=visits(people, visits_n, seed=seed + 1),
            manifest=visits_manifest(),
        ),
    )
