"""Benchmark a cross-domain job (issue 13): the demo's citizens joined with its visits, by district.

For each size (citizens, visits = 5 x citizens, the demo's ratio) it runs the demo question, patients,
visits and average cost per district, through the protocol's steps one by one and times each: per-person
pre-aggregation in each domain, blinding, re-blinding, Paillier encryption or secret sharing, matching and
adding at the gateway, decryption of the masked sums, and the bytes each step would carry. Beside it, the
same query within one domain (DuckDB on both tables in one process), and the ratio. A second table does
the same for COUNT(DISTINCT unit) alone, which needs no encryption.

Times are CPU seconds of this process (``time.process_time``), so that other load on the machine does
not inflate them; the single-domain query's DuckDB threads are all counted. Every party runs in this
process, one after another: ``cpu`` adds every step up, ``2 cores`` adds, per step, the slower of the
two domains (a deployment runs their parts on their own executors at once).

    python benchmarks/bench_cross_domain.py      # the figures: three sizes with shares, three with Paillier
    python benchmarks/bench_cross_domain.py --shares-sizes 2000 --paillier-sizes 300
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import duckdb
import pandas as pd

from executors.crossdomain import (
    Aggregate,
    CrossDomainPlan,
    Function,
    Gateway,
    Protection,
    Side,
    SidePlan,
    new_party,
)
from sandbox_api.cli.demo_data import demo_datasets

T = TypeVar("T")

DEMO = CrossDomainPlan(
    left=SidePlan("person_id", group_by=("district",), one_row=True),  # the citizens' register
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


def timed(phases: dict[str, list[float]], name: str, step: Callable[[], T]) -> T:
    start = time.process_time()
    out = step()
    phases.setdefault(name, []).append(time.process_time() - start)
    return out


def cross_domain(
    plan: CrossDomainPlan, citizens: pd.DataFrame, visits: pd.DataFrame, protection: Protection
) -> dict[str, float]:
    """Seconds per step, summed over the parties (``cpu``) and along the critical path when the two
    domains run their steps at the same time (``2 cores``), and the megabytes carried."""
    phases: dict[str, list[float]] = {}
    left = timed(phases, "pre-aggregate", lambda: new_party(plan, Side.LEFT, citizens, protection=protection))
    right = timed(phases, "pre-aggregate", lambda: new_party(plan, Side.RIGHT, visits, protection=protection))
    gateway = Gateway(plan, min_units=10)
    left_blinded = timed(phases, "blind", left.blinded)
    right_blinded = timed(phases, "blind", right.blinded)
    gateway.receive_tokens(timed(phases, "re-blind", lambda: right.reblinded(left_blinded)))
    gateway.receive_tokens(timed(phases, "re-blind", lambda: left.reblinded(right_blinded)))
    payloads = [timed(phases, "protect values", p.payloads) for p in (left, right)]
    for payload in payloads:
        gateway.receive_payloads(payload)
    pending = timed(phases, "match + add", gateway.match)
    parties = {Side.LEFT: left, Side.RIGHT: right}
    replies = [
        timed(phases, "answer", partial(parties[side].answer, request)) for side, request in pending.requests
    ]
    timed(phases, "table", lambda: gateway.table(pending, replies))
    tokens = sum(len(b) for m in (left_blinded, right_blinded) for b in m.batches)
    ciphertexts = sum(len(b) for p in payloads for b in p.ciphertexts)
    shares = sum(len(raw) for p in payloads for raw in p.gateway_shares)
    shares += sum(len(raw) for m in (left_blinded, right_blinded) for raw in m.helper_shares)
    out = {name: sum(times) for name, times in phases.items()}
    out["cpu"] = sum(out.values())
    out["2 cores"] = sum(max(times) for times in phases.values())
    # Each token crosses twice (to the other domain, then to the gateway); a ciphertext is 2 x 2048 bits.
    out["MB carried"] = (2 * 33 * tokens + 512 * ciphertexts + shares) / 1e6
    return out


def one_domain(citizens: pd.DataFrame, visits: pd.DataFrame) -> float:
    con = duckdb.connect()
    con.register("citizens", citizens[["person_id", "district"]])
    con.register("visits", visits[["person_id", "cost"]])
    start = time.process_time()
    con.execute(ONE_DOMAIN).fetchall()
    return time.process_time() - start


def report(plan: CrossDomainPlan, sizes: list[int], protection: Protection, title: str) -> None:
    print(f"\n{title}")
    header = None
    for n in sizes:
        citizens_ds, visits_ds = demo_datasets(citizens_n=n, visits_n=5 * n)
        citizens, visits = citizens_ds.frame, visits_ds.frame
        phases = cross_domain(plan, citizens, visits, protection)
        base = one_domain(citizens, visits)
        if header is None:
            header = ["citizens", "visits", "visitors", *phases, "one domain", "ratio (2 cores)"]
            print(" | ".join(header))
        visitors = visits["person_id"].nunique()
        cells = [f"{v:.2f}" for v in phases.values()]
        ratio = f"{phases['2 cores'] / base:.0f}x"
        print(" | ".join([str(n), str(5 * n), str(visitors), *cells, f"{base:.3f}", ratio]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shares-sizes", type=int, nargs="*", default=[20_000, 60_000, 200_000])
    parser.add_argument("--paillier-sizes", type=int, nargs="*", default=[500, 1000, 2000])
    parser.add_argument("--count-sizes", type=int, nargs="*", default=[])
    args = parser.parse_args()
    report(DEMO, args.shares_sizes, Protection.SHARES, "the demo question, values as shares; seconds")
    report(
        DEMO, args.paillier_sizes, Protection.PAILLIER, "the demo question, values under Paillier; seconds"
    )
    report(COUNT_ONLY, args.count_sizes, Protection.SHARES, "COUNT(DISTINCT unit) by district alone; seconds")


if __name__ == "__main__":
    main()
