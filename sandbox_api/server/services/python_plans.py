"""A real Python job's input plan: the tables its code reads, and never two domains' tables in one sandbox.

A Python job runs in one sandbox, which unwraps the data key of every table it is handed. Under a scope
that names datasets of two domains, handing it every table the scope grants would put both domains'
keys and rows in one process, which the product promises never happens (docs/cross-domain.md). So
under such a scope the plan holds only the tables the code reads (``executors.pyjobs.reads``: literal
names; a computed access counts as every table), and a job whose tables span two domains is refused
at submit and in the dry run with :data:`ONE_DOMAIN_RULE`. Replay plans the recorded code the same
way, so it reads the same tables; the runner refuses a stored job whose inputs span two domains
(stored before this check existed) instead of running it.

A scope over one domain's datasets keeps today's plan: every table it grants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from executors.pyjobs.reads import TABLES_NAME, tables_read
from policies import Catalog, Finding, PolicyViolation, Scope, domain_of
from policies.python_inputs import InputPlan, input_plan

#: The finding's stable rule name (clients and tests match on it).
ONE_DOMAIN_RULE = "python_one_domain"

_ASK_INSTEAD = (
    "a Python job reads one domain's tables. Ask the cross-domain question as SQL (kind sql or "
    "cross-domain: it runs as a private join, each domain computing on its own rows), or split it into "
    "one Python job per domain"
)


@dataclass(frozen=True)
class PythonPlan:
    """The tables a real Python job is handed, and why it may not run (empty: it may)."""

    plan: InputPlan
    findings: tuple[Finding, ...] = ()


def python_plan(scope: Scope, catalog: Catalog, code: str) -> PythonPlan:
    """The input plan of a real Python job running ``code`` under ``scope`` (pure).

    Under a scope over one domain: every table it grants, as always. Under a scope over two: the tables
    the code reads, or a :data:`ONE_DOMAIN_RULE` finding where those span both domains.
    """
    full = input_plan(scope, catalog)
    if len(full.domains) <= 1:
        return PythonPlan(full)
    read = tables_read(code, [q.name for q in full.inputs])
    plan = full if read is None else input_plan(scope, catalog, only=read)
    if len(plan.domains) <= 1:
        return PythonPlan(plan)
    return PythonPlan(plan, (_finding(plan, computed=read is None),))


def _finding(plan: InputPlan, *, computed: bool) -> Finding:
    by_domain: dict[str, list[str]] = {}
    for ref in plan.tables:
        by_domain.setdefault(domain_of(ref.dataset), []).append(ref.sql_name)
    reads = "; ".join(f"{domain}: {', '.join(names)}" for domain, names in sorted(by_domain.items()))
    how = (
        f"the code reads `{TABLES_NAME}` by a name it computes, which counts as every table of the scope "
        f"({reads})"
        if computed
        else f"the code reads tables of {len(by_domain)} domains ({reads})"
    )
    return Finding(ONE_DOMAIN_RULE, f"{how}; {_ASK_INSTEAD}", ", ".join(ref.sql_name for ref in plan.tables))


def refuse_two_domains(inputs: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``PolicyViolation`` where a stored real Python job's ``inputs`` span two domains.

    >>> refuse_two_domains([{"dataset": "a/x", "sql_name": "x"}, {"dataset": "a/y", "sql_name": "y"}])
    >>> refuse_two_domains([{"dataset": "a/x", "sql_name": "x"}, {"dataset": "b/y", "sql_name": "y"}])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    policies.errors.PolicyViolation: a Python job reads one domain's tables...
    """
    domains = sorted({domain_of(str(i["dataset"])) for i in inputs})
    if len(domains) <= 1:
        return
    names = ", ".join(str(i["sql_name"]) for i in inputs)
    message = (
        f"the job was stored with tables of {len(domains)} domains ({', '.join(domains)}); {_ASK_INSTEAD}"
    )
    raise PolicyViolation(
        "a Python job reads one domain's tables; this one was stored with both domains' tables and is "
        "not run",
        findings=(Finding(ONE_DOMAIN_RULE, message, names),),
    )
