"""Access applications: whether a scope draft stays within what an operator applied for.

An operator applies for datasets, columns, a purpose and a duration; a policy officer turns the
application into a scope draft. The draft may grant less (fewer columns, stricter uses, a shorter
validity), never more: every finding here names what the draft grants beyond the application.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from policies.findings import Finding
from policies.model import Scope, Use


@dataclass(frozen=True)
class Application:
    applicant: str
    datasets: Sequence[str]  # "domain/dataset"
    columns: Mapping[str, Sequence[str]]  # {"domain/dataset": [column, ...]}
    duration_days: int


def draft_findings(application: Application, scope: Scope, *, today: date) -> tuple[Finding, ...]:
    """Every way ``scope`` grants more than ``application`` asked for (empty: the draft fits).

    >>> from policies.model import load_scope
    >>> scope = load_scope('''
    ... scope: s
    ... purpose: p
    ... grantees: [operator:alice]
    ... valid: {from: 2026-01-01, until: 2026-03-31}
    ... datasets:
    ...   health/citizens:
    ...     columns: {district: {use: group}, income: {use: aggregate}}
    ... ''')
    >>> asked = Application("alice", ["health/citizens"], {"health/citizens": ["district"]}, 90)
    >>> [f.rule for f in draft_findings(asked, scope, today=date(2026, 1, 1))]
    ['application_column_not_requested']
    """
    return tuple(_findings(application, scope, today=today))


def _findings(application: Application, scope: Scope, *, today: date) -> Iterator[Finding]:
    applicant = f"operator:{application.applicant}"
    if scope.grantees != (applicant,):
        yield Finding(
            "application_grantees",
            f"a draft for an application grants its applicant alone ({applicant}), "
            f"not {list(scope.grantees)}",
        )
    requested = set(application.datasets)
    for key, grant in scope.datasets.items():
        dataset = "/".join(key.split("/")[:2])  # a key may name one table: domain/dataset/table
        if dataset not in requested:
            yield Finding(
                "application_dataset_not_requested",
                f"dataset {dataset} was not applied for (the application names {sorted(requested)})",
            )
            continue
        wanted = {c.lower() for c in application.columns.get(dataset, ())}
        for column, rule in grant.columns.items():
            if rule.use is not Use.DENY and column.lower() not in wanted:
                yield Finding(
                    "application_column_not_requested",
                    f"column {column} of {dataset} was not applied for; deny it or leave it out",
                )
    latest = today + timedelta(days=application.duration_days)
    if scope.valid.until > latest:
        yield Finding(
            "application_duration",
            f"the draft is valid until {scope.valid.until}, past the {application.duration_days} days "
            f"applied for (at most {latest})",
        )
