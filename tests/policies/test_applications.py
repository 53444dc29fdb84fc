"""A scope drafted from an access application grants no more than the application asked for."""

from __future__ import annotations

from datetime import date

from policies.applications import Application, draft_findings
from policies.model import load_scope

ASKED = Application(
    applicant="alice",
    datasets=["health/citizens"],
    columns={"health/citizens": ["district", "income"]},
    duration_days=90,
)
TODAY = date(2026, 1, 1)


def draft(
    *,
    grantees: str = "[operator:alice]",
    until: str = "2026-03-31",
    extra: str = "",
    key: str = "health/citizens",
) -> str:
    return f"""
scope: s
purpose: p
grantees: {grantees}
valid: {{from: 2026-01-01, until: {until}}}
datasets:
  {key}:
    columns:
      district: {{use: group}}
      income: {{use: aggregate}}
      name: {{use: deny}}
{extra}
"""


def rules(document: str) -> list[str]:
    return [f.rule for f in draft_findings(ASKED, load_scope(document), today=TODAY)]


def test_a_draft_within_the_application_has_no_findings() -> None:
    assert rules(draft()) == []
    assert rules(draft(key="health/citizens/citizens")) == []  # one table of the dataset


def test_a_draft_for_someone_else_or_a_group_is_refused() -> None:
    assert rules(draft(grantees="[operator:alice, group:analysts]")) == ["application_grantees"]
    assert rules(draft(grantees="[operator:bob]")) == ["application_grantees"]


def test_a_column_not_applied_for_is_refused_unless_denied() -> None:
    wider = draft(extra="      sex: {use: group}\n")
    assert rules(wider) == ["application_column_not_requested"]


def test_a_dataset_not_applied_for_is_refused() -> None:
    other = draft() + "  tax/returns:\n    columns: {amount: {use: aggregate}}\n"
    assert rules(other) == ["application_dataset_not_requested"]


def test_a_validity_past_the_duration_is_refused() -> None:
    assert rules(draft(until="2026-04-02")) == ["application_duration"]
    assert rules(draft(until="2026-04-01")) == []
