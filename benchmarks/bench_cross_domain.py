"""Benchmark a cross-domain job (issue 13): the demo's citizens joined with its visits, by district.

For each size (citizens, visits = 5 x citizens, the demo's ratio) it runs the demo question, patients,
visits and average cost per district, through the protocol's steps one by one and times each: per-person
pre-aggregation in each domain, blinding, re-blinding, Paillier encryption, matching and homomorphic
adding at the gateway, decryption of the masked sums, and the bytes each step would carry. Beside it, the
same query within one domain (DuckDB on both tables in one process), and the ratio. A second table does
the same for COUNT(DISTINCT unit) alone, which needs no encryption.

Every party runs in this process, one after another, on one core: a deployment runs the two domains'
parts on their own executors in parallel.

    python benchmarks/bench_cross_domain.py                      # three sizes of the figures
    python benchmarks/bench_cross_domain.py --sizes 2000 --count-sizes 20000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import duckdb
import pandas as pd

from executors.crossdomain import Aggregate, CrossDomainPlan, Function, Gateway, Side, SidePlan, new_party
from executors.crossdomain.domain_party import DomainParty
from sandbox_api.demo_data import demo_datasets

T = TypeVar("T")

DEMO = CrossDomainPlan(
    left=SidePlan("person_id", group_by=("district",)),
    right=SidePlan("person_id", sums=("cost",)),
    aggregates=(
        Aggregate("patients", Function.COUNT_UNITS),
        Aggregate("visits", Function.COUNT),
        Aggregate("avg_cost", Function.AVG, Side.RIGHT, "cost"),
    ),
)
COUNT_ONLY = CrossDomainPlan(
    left=SidePlan("person_id", group_by=("district",)),
    right=SidePlan("person_id"),
    aggregates=(Aggregate("patients", Function.COUNT_UNITS),),
)
ONE_DOMAIN = """
SELECT c.district, COUNT(DISTINCT v.person_id) AS patients, COUNT(*) AS visits, AVG(v.cost) AS avg_cost
FROM visits v JOIN citizens c ON v.person_id = c.person_id
GROUP BY c.district HAVING COUNT(DISTINCT v.person_id) >= 10
"""


def timed(phases: dict[str, float], name: str, step: Callable[[], T]) -> T:
    start = time.perf_counter()
    out = step()
    phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
    return out


def cross_domain(plan: CrossDomainPlan, citizens: pd.DataFrame, visits: pd.DataFrame) -> dict[str, float]:
    phases: dict[str, float] = {}
    left: DomainParty = timed(phases, "pre-aggregate", lambda: new_party(plan, Side.LEFT, citizens))
    right: DomainParty = timed(phases, "pre-aggregate", lambda: new_party(plan, Side.RIGHT, visits))
    gateway = Gateway(plan, min_units=10)
    left_blinded = timed(phases, "blind", left.blinded)
    right_blinded = timed(phases, "blind", right.blinded)
    gateway.receive_tokens(timed(phases, "re-blind", lambda: right.reblinded(left_blinded)))
    gateway.receive_tokens(timed(phases, "re-blind", lambda: left.reblinded(right_blinded)))
    payloads = [timed(phases, "encrypt", p.payloads) for p in (left, right)]
    for payload in payloads:
        gateway.receive_payloads(payload)
    pending = timed(phases, "match + add", gateway.match)
    parties = {Side.LEFT: left, Side.RIGHT: right}
    replies = {}
    for side, request in pending.requests.items():
        replies[side] = timed(phases, "decrypt", lambda: parties[side].decrypted(request))  # noqa: B023
    timed(phases, "table", lambda: gateway.table(pending, replies))
    tokens = sum(len(b) for m in (left_blinded, right_blinded) for b in m.batches)
    ciphertexts = sum(len(b) for p in payloads for b in p.ciphertexts)
    # Each token crosses twice (to the other domain, then to the gateway); a ciphertext is 2 x 2048 bits.
    phases["MB carried"] = (2 * 33 * tokens + 512 * ciphertexts) / 1e6
    phases["total"] = sum(v for k, v in phases.items() if k != "MB carried")
    return phases


def one_domain(citizens: pd.DataFrame, visits: pd.DataFrame) -> float:
    con = duckdb.connect()
    con.register("citizens", citizens[["person_id", "district"]])
    con.register("visits", visits[["person_id", "cost"]])
    start = time.perf_counter()
    con.execute(ONE_DOMAIN).fetchall()
    return time.perf_counter() - start


def report(plan: CrossDomainPlan, sizes: list[int], title: str) -> None:
    print(f"\n{title}")
    header = None
    for n in sizes:
        citizens_ds, visits_ds = demo_datasets(citizens_n=n, visits_n=5 * n)
        citizens, visits = citizens_ds.frame, visits_ds.frame
        phases = cross_domain(plan, citizens, visits)
        base = one_domain(citizens, visits)
        if header is None:
            header = ["citizens", "visits", "visitors", *phases, "one domain s", "ratio"]
            print(" | ".join(header))
        visitors = visits["person_id"].nunique()
        cells = [f"{v:.2f}" for v in phases.values()]
        print(
            " | ".join(
                [str(n), str(5 * n), str(visitors), *cells, f"{base:.3f}", f"{phases['total'] / base:.0f}x"]
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000, 4000])
    parser.add_argument("--count-sizes", type=int, nargs="*", default=[10_000, 20_000, 40_000])
    args = parser.parse_args()
    report(DEMO, args.sizes, "patients, visits, avg cost by district (Paillier for the sums), seconds")
    report(COUNT_ONLY, args.count_sizes, "COUNT(DISTINCT unit) by district (no encryption), seconds")


if __name__ == "__main__":
    main()
