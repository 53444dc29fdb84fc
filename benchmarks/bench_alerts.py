"""What alerts on unusual use cost: on the hot path (an audit append that a watcher is told of) and on
the background thread (one detection over a full history).

    .venv/bin/python benchmarks/bench_alerts.py --appends 2000 --jobs 200

Prints one JSON object: the mean and p95 of ``AuditLog.record`` without and with the alert watcher
(taking turns in blocks, on a SQLite file), and one detection's rules over ``--jobs`` SQL jobs, parsing
every query (cold) and with the shapes the service keeps (warm).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from crypto.keyring import LocalKeyring
from policies.usage_alerts import Activity, JobRecord, Thresholds, detect, query_shape
from sandbox_api.clock import SystemClock
from sandbox_api.server.bootstrap import open_audit_log
from sandbox_api.server.services.alerts import AlertService
from sandbox_api.server.settings import Settings
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import open_database


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def appends(state: Path, n: int, blocks: int) -> dict[str, Any]:
    settings = Settings(state_dir=state)
    clock = SystemClock()
    keys = LocalKeyring.open(state / "keyring.json", create=True, clock=clock.now)
    db = open_database(f"sqlite:///{state / 'metadata.db'}")
    migrate.upgrade(db)
    plain = open_audit_log(settings, db=db, keys=keys, clock=clock)
    watched = open_audit_log(settings, db=db, keys=keys, clock=clock)
    alerts = AlertService(db=db, audit=watched, clock=clock, scopes=cast(Any, None))
    watched.watch(alerts.notice)
    # The worker runs as in a gateway: its detections (here a principal lookup that ends them, since
    # the actor is no operator) compete for the same cores as the appends being timed.
    alerts.start()
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(blocks):
        for mode, log in (("off", plain), ("on", watched)):
            for i in range(n // blocks):
                began = time.perf_counter()
                log.record(event="request.denied", actor="alice", details={"scope": "s", "i": i})
                times[mode].append((time.perf_counter() - began) * 1000)
    alerts.stop()
    db.dispose()
    out = {
        mode: {"mean_ms": round(statistics.fmean(v), 3), "p95_ms": round(percentile(v, 0.95), 3)}
        for mode, v in times.items()
    }
    out["ratio_mean_on_off"] = round(out["on"]["mean_ms"] / out["off"]["mean_ms"], 3)  # type: ignore[index]
    return out


def detection(jobs: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    sqls = [
        f"SELECT district, COUNT(*) AS n, AVG(income) FROM citizens WHERE sex = 'F' AND age > {i} "
        "GROUP BY district"
        for i in range(jobs)
    ]
    cold = [JobRecord(f"j{i}", now - timedelta(seconds=i), sql) for i, sql in enumerate(sqls)]
    warm = [JobRecord(r.job_id, r.at, r.sql, shape=query_shape(r.sql)) for r in cold]
    timed = {}
    for name, records in (("cold_ms", cold), ("warm_ms", warm)):
        began = time.perf_counter()
        detect(Activity("alice", "s", jobs=records), Thresholds(), now=now)
        timed[name] = round((time.perf_counter() - began) * 1000, 1)
    return {"jobs": jobs, **timed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-alerts-") as scratch:
        result = {
            "benchmark": "alerts on unusual use: hot path and one detection",
            "audit_record": appends(Path(scratch), args.appends, args.blocks),
            "detection": detection(args.jobs),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
