"""Marks the rewrite passes put on the nodes they generate, read back by the analysis and the checks.

They travel in sqlglot's node metadata, which the pipeline clears right after parsing, so a query's text
(comments included) can never set one.
"""

from __future__ import annotations

#: Meta keys the rewrite passes put on nodes they generate.
MASK_META = "sbx_mask"  # a mask around one column: judged as that column
TRANSPARENT_META = "sbx_transparent"  # a guard around ``this``: judged as ``this``
FAMILY_META = "sbx_family"
GENERATED_META = "sbx_generated"
FILTERED_SCAN_META = "sbx_filtered_scan"
STAR_META = "sbx_star"
#: Columns of the per-unit contributions ``policies.dp.passes.clamp_unit_contributions`` generates; a
#: query cannot name ``_sbx`` columns, so the checks may recognise the engine's sums over them.
UNIT_CONTRIBUTION_PREFIX = "_sbx_dp_c"
#: The flag ``policies.dp.passes.bound_groups_per_unit`` adds to a sampled scan on each unit's first
#: kept row (1, else NULL), counted instead of ``COUNT(DISTINCT unit)``: no data flows through it but
#: the unit's presence, which the DP plan counts anyway.
FIRST_ROW_FLAG = "_sbx_dp_first"
