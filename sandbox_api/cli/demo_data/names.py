"""Names of the demo's domains, datasets and scope, and its default seed."""

from __future__ import annotations

from typing import Final

CIVIL_AFFAIRS: Final = "civil-affairs"
HEALTH_BUREAU: Final = "health-bureau"
CITIZENS_DATASET: Final = "citizens"
VISITS_DATASET: Final = "visits"
DEMO_SCOPE_NAME: Final = "flu-study-2026"
#: The same study under differential privacy: noisy results and a budget that ends.
DP_SCOPE_NAME: Final = "flu-study-2026-dp"
DEFAULT_SEED: Final = 20260101
