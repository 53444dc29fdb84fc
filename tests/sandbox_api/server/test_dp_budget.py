"""The DP budget ledger: exhaustion, refunds, lineage, per-grantee budgets, audit events, and two
gateways spending concurrently from one database without overspending, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from crypto.audit import verify_chain
from crypto.keyring import LocalKeyring
from policies.dp.cost import DpCost
from policies.dp.errors import BudgetEntryUnknown, BudgetExhausted, DpError
from policies.dp.examples import DP_SCOPE, dp_scope
from policies.model import Scope
from sandbox_api.server.services.audit import AuditLog, to_entry
from sandbox_api.server.services.dp_budget import DpBudgetService
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import Database, open_database
from sandbox_api.server.store.models import AuditEventRow
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

#: 2.0 epsilon in all, 0.5 per job: exactly four jobs fit.
FOUR_JOBS = DP_SCOPE.replace("epsilon_per_job: 1.0", "epsilon_per_job: 0.5").replace(
    "budget: 10.0", "budget: 2.0"
)


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Ledger:
    url: str
    keys: LocalKeyring
    databases: list[Database]

    def gateway(self) -> DpBudgetService:
        """A service on its own engine, as a second gateway on the same database would have."""
        db = open_database(self.url)
        self.databases.append(db)
        clock = _Clock()
        audit = AuditLog(
            db=db,
            clock=clock,
            checkpoint_every=1000,
            signing_key=lambda: self.keys.ensure_signing_key(now=clock.now()),
        )
        return DpBudgetService(db=db, audit=audit, clock=clock)

    def events(self) -> list[tuple[str, dict[str, object]]]:
        with self.databases[0].read() as session:
            rows = session.execute(select(AuditEventRow).order_by(AuditEventRow.seq)).scalars().all()
            entries = [to_entry(r) for r in rows]
        verify_chain(entries)
        return [(e.event, dict(e.details)) for e in entries]


@pytest.fixture
def ledger(tmp_path: Path, store: NewStore) -> Iterator[Ledger]:
    url = store() or f"sqlite:///{tmp_path / 'metadata.db'}"
    keys = LocalKeyring.open(tmp_path / "keyring.json", create=True, clock=_Clock().now)
    state = Ledger(url, keys, [])
    first = open_database(url)
    migrate.upgrade(first)
    state.databases.append(first)
    yield state
    for db in state.databases:
        db.dispose()


def _cost(scope: Scope) -> DpCost:
    dp = scope.disclosure.dp
    assert dp is not None
    return DpCost(dp.epsilon_per_job, 0.0, dp.mechanism, (), None, True, (), 1, 1)


def test_jobs_are_refused_once_the_budget_is_spent(ledger: Ledger) -> None:
    service, scope = ledger.gateway(), dp_scope(FOUR_JOBS)
    for i in range(4):
        service.charge(job_id=f"job{i}", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    with pytest.raises(BudgetExhausted, match=r"needs epsilon 0\.5.*epsilon 0 "):
        service.charge(job_id="job4", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    status = service.left(scope=scope, grantee="alice")
    assert status.left["epsilon"] == 0
    assert status.spent["epsilon"] == pytest.approx(2.0)
    events = [event for event, _ in ledger.events()]
    assert events == ["dp.charged"] * 4 + ["dp.refused"]


def test_a_refund_gives_back_exactly_one_charge_once(ledger: Ledger) -> None:
    service, scope = ledger.gateway(), dp_scope(FOUR_JOBS)
    for i in range(4):
        service.charge(job_id=f"job{i}", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    assert service.refund(job_id="job2", reason="the worker failed") is True
    assert service.refund(job_id="job2", reason="cancelled as well") is False
    assert service.left(scope=scope, grantee="alice").left["epsilon"] == pytest.approx(0.5)
    service.charge(job_id="job5", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    with pytest.raises(BudgetExhausted):
        service.charge(job_id="job6", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    with pytest.raises(BudgetEntryUnknown):
        service.refund(job_id="never-charged", reason="x")
    with pytest.raises(DpError, match="refunded"):  # a refunded job cannot run on the old charge
        service.charge(job_id="job2", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    refunded = [details for event, details in ledger.events() if event == "dp.refunded"]
    assert [(d["job"], d["reason"]) for d in refunded] == [("job2", "the worker failed")]


def test_charging_the_same_job_twice_charges_once(ledger: Ledger) -> None:
    service, scope = ledger.gateway(), dp_scope(FOUR_JOBS)
    for _ in range(3):
        service.charge(job_id="job0", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    assert service.left(scope=scope, grantee="alice").spent["epsilon"] == pytest.approx(0.5)


def test_a_new_version_of_the_scope_shares_the_budget_and_grantees_do_not(ledger: Ledger) -> None:
    """Re-approving the scope with another purpose (a new version id) must not reset what alice spent."""
    service, scope = ledger.gateway(), dp_scope(FOUR_JOBS)
    renewed = dp_scope(
        FOUR_JOBS.replace("Seasonal influenza", "Influenza").replace("alice]", "alice, operator:bob]")
    )
    assert renewed.version_id != scope.version_id
    for i in range(4):
        service.charge(job_id=f"job{i}", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    with pytest.raises(BudgetExhausted):
        service.charge(job_id="again", scope=renewed, grantee="alice", cost=_cost(renewed), actor="alice")
    service.charge(job_id="bob0", scope=renewed, grantee="bob", cost=_cost(renewed), actor="bob")
    assert service.left(scope=renewed, grantee="bob").left["epsilon"] == pytest.approx(1.5)


def test_two_gateways_spending_at_once_never_overspend(ledger: Ledger) -> None:
    """24 jobs submitted at the same moment through two gateways; the budget has room for four."""
    gateways = [ledger.gateway(), ledger.gateway()]
    scope = dp_scope(FOUR_JOBS)
    start = threading.Barrier(24)

    def submit(i: int) -> bool:
        start.wait()
        try:
            gateways[i % 2].charge(
                job_id=f"job{i}", scope=scope, grantee="alice", cost=_cost(scope), actor="alice"
            )
        except BudgetExhausted:
            return False
        return True

    with ThreadPoolExecutor(max_workers=24) as pool:
        charged = list(pool.map(submit, range(24)))
    assert sum(charged) == 4
    assert gateways[0].left(scope=scope, grantee="alice").spent["epsilon"] == pytest.approx(2.0)
    events = [event for event, _ in ledger.events()]
    assert events.count("dp.charged") == 4
    assert events.count("dp.refused") == 20


def test_a_periodic_budget_comes_back_only_in_the_next_period(ledger: Ledger) -> None:
    refreshing = FOUR_JOBS.replace(
        "budget: 2.0",
        "budget: 2.0\n    refresh: {every_days: 30, risk_accepted: 'the register is replaced every month'}",
    )
    scope, service = dp_scope(refreshing), ledger.gateway()
    later = DpBudgetService(db=service.db, audit=service.audit, clock=_Later())
    for i in range(4):
        service.charge(job_id=f"job{i}", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    with pytest.raises(BudgetExhausted, match="in this period"):
        service.charge(job_id="job4", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    later.charge(job_id="job5", scope=scope, grantee="alice", cost=_cost(scope), actor="alice")
    assert later.left(scope=scope, grantee="alice").left["epsilon"] == pytest.approx(1.5)


class _Later:
    def now(self) -> datetime:
        return datetime(2026, 4, 15, 9, 0, tzinfo=UTC)  # 45 days on: the next 30-day period
