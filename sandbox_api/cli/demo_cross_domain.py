"""One cross-domain job on the demo data, narrated: the flu question across civil-affairs and health.

The operator's SQL goes through the policy engine as any job does; the prepared query is split into
each domain's own SELECT (``executors.crossdomain.split``); each domain runs its part on a DuckDB that
holds only its own table, pre-aggregates per person and takes part in the private join
(``executors.crossdomain``); the gateway's cells go through the one release function. Every party runs
in this process, each with only its own keys; the narration says what crossed at each step.

    python -m sandbox_api.cli.demo_cross_domain --citizens 20000 --visits 100000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from executors.crossdomain import CrossDomainRun, Gateway, Protection, Side, new_party, run_in_process
from executors.crossdomain.messages import BlindedBatches, Payloads, ReblindedBatches
from executors.crossdomain.split import DomainPart, SplitQuery, disclosure_findings, split
from policies import PolicyViolation, PreparedQuery, Scope, load_scope, prepare
from policies.catalog import Catalog, ColumnSchema, DatasetSchema, TableSchema
from sandbox_api.cli.demo import FLU_BY_DISTRICT
from sandbox_api.cli.demo_data import demo_datasets
from sandbox_api.cli.demo_data.manifests import citizens_manifest, demo_scope_yaml, visits_manifest
from sandbox_api.cli.demo_data.names import CITIZENS_DATASET, CIVIL_AFFAIRS, HEALTH_BUREAU, VISITS_DATASET
from sandbox_api.manifest import TableDecl
from sandbox_api.server.services.release import Released, TableResult, release
from sandbox_api.server.services.release_facts import ReleaseFacts

Say = Callable[[str], None]
CITIZENS = f"{CIVIL_AFFAIRS}/{CITIZENS_DATASET}"
VISITS = f"{HEALTH_BUREAU}/{VISITS_DATASET}"
DOMAINS: Mapping[str, str] = {CITIZENS: CIVIL_AFFAIRS, VISITS: HEALTH_BUREAU}


def demo_catalog() -> Catalog:
    """The catalog of both demo datasets, as their stewards declared them."""
    datasets = []
    for key, manifest in ((CITIZENS, citizens_manifest()), (VISITS, visits_manifest())):
        (table,) = [TableDecl.model_validate(t) for t in manifest["tables"]]
        columns = tuple(ColumnSchema(name=c.name, type=c.type, cls=c.cls) for c in table.columns)
        schema = TableSchema(
            name=table.name,
            unit=table.unit,
            columns=columns,
            row_count=None,
            one_row_per_unit=table.one_row_per_unit,
        )
        domain, name = key.split("/")
        datasets.append(DatasetSchema(domain=domain, name=name, tables=(schema,)))
    return Catalog(datasets=tuple(datasets))


def demo_scope() -> Scope:
    """The demo scope over both datasets (k = 10, suppression by dropping)."""
    return load_scope(demo_scope_yaml(valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31)))


def split_prepared(prepared: PreparedQuery) -> SplitQuery:
    """``prepared`` split into each domain's part and the private join's plan (the citizens' register
    declares one row per person, which makes COUNT(*) and SUM over visits exact)."""
    catalog = demo_catalog()
    one_row = {t.dataset for t in prepared.tables if catalog.table(f"{t.dataset}/{t.table}").one_row_per_unit}
    return split(
        prepared.sql,
        datasets={t.sql_name: t.dataset for t in prepared.tables},
        domains=DOMAINS,
        one_row=one_row,
    )


def run_domain_part(part: DomainPart, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One domain's executor: a DuckDB that holds that domain's table and nothing else."""
    name = part.dataset.split("/")[1]
    con = duckdb.connect()
    con.register(name, tables[name])
    return con.execute(part.sql).df()


@dataclass(frozen=True)
class CrossDomainDemo:
    """What the demo produced: the released result and the run's transcript."""

    released: Released
    run: CrossDomainRun
    query: SplitQuery


def run_demo(
    tables: Mapping[str, pd.DataFrame],
    *,
    say: Say = print,
    protection: Protection = Protection.SHARES,
) -> CrossDomainDemo:
    """Run the flu question across both domains on ``tables`` (``citizens`` and ``visits``), narrating."""
    scope, catalog = demo_scope(), demo_catalog()
    refused = disclosure_findings(scope.disclosure)
    if refused:
        raise PolicyViolation(
            "the scope's disclosure settings do not fit a cross-domain job", findings=refused
        )
    say(f"The operator asks, under scope {scope.name!r}:\n{FLU_BY_DISTRICT}\n")
    prepared = prepare(FLU_BY_DISTRICT, scope, catalog)
    query = split_prepared(prepared)
    say("The policy engine checks and rewrites it as for any job, then splits it per domain:")
    for part in (query.left, query.right):
        say(f"  {DOMAINS[part.dataset]} runs on its own data only:\n    {part.sql}")
    rows = {
        side: run_domain_part(part, tables)
        for side, part in ((Side.LEFT, query.left), (Side.RIGHT, query.right))
    }
    left = new_party(query.plan, Side.LEFT, rows[Side.LEFT], protection=protection)
    right = new_party(query.plan, Side.RIGHT, rows[Side.RIGHT], protection=protection)
    run = run_in_process(left, right, Gateway(query.plan, min_units=scope.disclosure.min_units))
    _narrate_transcript(run, query, say)
    released = release(
        TableResult(run.table), scope=scope, facts=ReleaseFacts(additive_columns=prepared.additive_columns)
    )
    if not isinstance(released, Released):
        raise TypeError("a SQL-shaped result is released or refused by the release function, never withheld")
    frame = pd.DataFrame(released.rows, columns=released.columns)
    for column, descending in reversed(query.order_by):
        frame = frame.sort_values(column, ascending=not descending, kind="stable")
    say("\nReleased to the operator, after the disclosure rules:")
    say((frame if query.limit is None else frame.head(query.limit)).to_string(index=False))
    for reason in released.report.reasons:
        say(f"  - {reason}")
    return CrossDomainDemo(released, run, query)


def _narrate_transcript(run: CrossDomainRun, query: SplitQuery, say: Say) -> None:
    names = {
        "left": DOMAINS[query.left.dataset],
        "right": DOMAINS[query.right.dataset],
        "gateway": "the gateway",
    }
    say("\nWhat crossed, in order (no unit id, no row, no value in the clear):")
    for delivery in run.transcript.deliveries:
        message = delivery.message
        if isinstance(message, BlindedBatches | ReblindedBatches):
            tokens = sum(len(b) for b in message.batches)
            what = f"{tokens} blinded tokens in {len(message.batches)} padded batches"
        elif isinstance(message, Payloads):
            what = f"{len(message.group_keys)} group keys, {_values(message)}"
        else:
            what = _ANSWERS[type(message).__name__]
        say(f"  {names[delivery.sender]} -> {names[delivery.recipient]}: {what}")


_ANSWERS: Mapping[str, str] = {
    "DecryptRequest": "masked encrypted sums of the released cells, to decrypt",
    "DecryptReply": "the masked sums, decrypted",
    "ShareSumRequest": "the matched positions of each released cell, to add up its shares",
    "ShareSumReply": "its share sums of the released cells",
}


def _values(payload: Payloads) -> str:
    if payload.ciphertexts:
        return "values encrypted under its own key"
    return "the gateway's shares of values" if payload.gateway_shares else "no values"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument(
        "--protection", choices=[p.value for p in Protection], default=Protection.SHARES.value
    )
    args = parser.parse_args()
    citizens, visits = demo_datasets(citizens_n=args.citizens, visits_n=args.visits)
    run_demo({"citizens": citizens.frame, "visits": visits.frame}, protection=Protection(args.protection))


if __name__ == "__main__":
    main()
