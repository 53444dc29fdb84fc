"""The differential-privacy budget ledger: charge before a job runs, refund when it fails or is
cancelled, report what is left. Every charge, refusal and refund is an audit event.

Charging is one conditional UPDATE (``spent + charge <= limit``) on the ledger row, so two gateways on
one database cannot overspend: on PostgreSQL the row lock makes the second UPDATE re-read the first's
result; on SQLite the write transaction (``BEGIN IMMEDIATE``) serialises them. A refund flips its charge
row from "not refunded" to "refunded" with another conditional UPDATE, so it happens at most once, and
subtracts only what that charge added (never below zero). Mock jobs are never charged: the caller does
not call ``charge`` for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from policies.dp.budget import Amount, LedgerKey, charge_of, ledger_key, limit_of, refreshes, remaining
from policies.dp.cost import DpCost
from policies.dp.errors import BudgetEntryUnknown, BudgetExhausted, DpError
from policies.model import DifferentialPrivacy, Scope
from sandbox_api.clock import Clock, today
from sandbox_api.server.services.audit import SYSTEM_ACTOR, AuditLog
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import DpChargeRow, DpLedgerRow


@dataclass(frozen=True)
class BudgetStatus:
    """A grantee's budget in one scope lineage and period: limit, spent and left (as floats)."""

    scope: str
    grantee: str
    period: int
    limit: dict[str, float]
    spent: dict[str, float]
    left: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "grantee": self.grantee,
            "period": self.period,
            "limit": self.limit,
            "spent": self.spent,
            "left": self.left,
        }


@dataclass(frozen=True)
class JobBudget:
    """What one job spent of its owner's budget, and what the owner has left in the same ledger entry.

    Shown with the job to those who may read it (its owner, auditors, admins). It is ledger arithmetic
    only: charges depend on the scope's settings and the query's shape (the cost preview), never on the
    data, so the amount left tells nothing about any person (the dry run shows the same figure).
    """

    spent: dict[str, float]  # what this job spent; zero once it was refunded (failed, cancelled)
    refunded: bool
    status: BudgetStatus  # the owner's entry now: limit, spent by every job, left

    def to_dict(self) -> dict[str, object]:
        return {
            "scope": self.status.scope,
            "period": self.status.period,
            "spent": self.spent,
            "refunded": self.refunded,
            "limit": self.status.limit,
            "left": self.status.left,
        }


@dataclass(frozen=True)
class DpBudgetService:
    db: Database
    audit: AuditLog
    clock: Clock

    def charge(self, *, job_id: str, scope: Scope, grantee: str, cost: DpCost, actor: str) -> BudgetStatus:
        """Spend ``cost`` from ``grantee``'s budget before job ``job_id`` runs; ``BudgetExhausted`` if it
        does not fit. Charging the same job twice charges it once."""
        dp = _dp(scope)
        key = ledger_key(scope, grantee, today(self.clock))
        amount, limit = charge_of(cost), limit_of(dp)
        with self.db.write() as session:
            earlier = session.get(DpChargeRow, job_id)
            if earlier is not None:
                if earlier.refunded_at is not None:
                    # Its budget was given back: running it now would spend nothing. Never reuse an id.
                    raise DpError(f"job {job_id} was refunded; submit it again as a new job")
                return self._status(session, key, limit)
            ledger_id = self._entry(session, key)
            changed = session.execute(
                update(DpLedgerRow)
                .where(
                    DpLedgerRow.id == ledger_id,
                    DpLedgerRow.spent_epsilon + amount.epsilon <= limit.epsilon,
                    DpLedgerRow.spent_delta + amount.delta <= limit.delta,
                )
                .values(
                    spent_epsilon=DpLedgerRow.spent_epsilon + amount.epsilon,
                    spent_delta=DpLedgerRow.spent_delta + amount.delta,
                )
                .execution_options(synchronize_session=False)
            )
            if _rowcount(changed) == 1:
                session.add(
                    DpChargeRow(
                        job_id=job_id,
                        ledger_id=ledger_id,
                        epsilon=amount.epsilon,
                        delta=amount.delta,
                        charged_at=self.clock.now(),
                    )
                )
                status = self._status(session, key, limit)
                self.audit.append(
                    session, event="dp.charged", actor=actor, details=_details(job_id, key, amount, status)
                )
                return status
            status = self._status(session, key, limit)
        with self.db.write() as session:
            self.audit.append(
                session, event="dp.refused", actor=actor, details=_details(job_id, key, amount, status)
            )
        need = amount.as_floats()
        raise BudgetExhausted(
            f"this job needs epsilon {need['epsilon']:g}"
            + (f" and delta {need['delta']:g}" if amount.delta else "")
            + f"; the budget of scope {scope.name!r} has epsilon {status.left['epsilon']:g} and delta "
            f"{status.left['delta']:g} left for you"
            + (" in this period" if key.period else "")
            + f"; {refreshes(dp, today(self.clock))}",
        )

    def refund(self, *, job_id: str, reason: str, actor: str = SYSTEM_ACTOR) -> bool:
        """Give back job ``job_id``'s charge (it failed or was cancelled); ``False`` if already refunded."""
        with self.db.write() as session:
            if session.get(DpChargeRow, job_id) is None:
                raise BudgetEntryUnknown(f"job {job_id} has no differential-privacy charge to refund")
            return self.refund_in(session, job_id=job_id, reason=reason, actor=actor)

    def refund_in(self, session: Session, *, job_id: str, reason: str, actor: str = SYSTEM_ACTOR) -> bool:
        """``refund`` in the caller's transaction (the job's own failed or cancelled transition, so the
        refund commits with it); ``False`` when the job has no charge or it was refunded already."""
        charge = session.get(DpChargeRow, job_id)
        if charge is None:
            return False
        flipped = session.execute(
            update(DpChargeRow)
            .where(DpChargeRow.job_id == job_id, DpChargeRow.refunded_at.is_(None))
            .values(refunded_at=self.clock.now(), refund_reason=reason[:2000])
            .execution_options(synchronize_session=False)
        )
        if _rowcount(flipped) != 1:
            return False
        session.execute(
            update(DpLedgerRow)
            .where(
                DpLedgerRow.id == charge.ledger_id,
                DpLedgerRow.spent_epsilon >= charge.epsilon,
                DpLedgerRow.spent_delta >= charge.delta,
            )
            .values(
                spent_epsilon=DpLedgerRow.spent_epsilon - charge.epsilon,
                spent_delta=DpLedgerRow.spent_delta - charge.delta,
            )
            .execution_options(synchronize_session=False)
        )
        entry = session.get(DpLedgerRow, charge.ledger_id, populate_existing=True)
        assert entry is not None  # the foreign key guarantees it
        self.audit.append(
            session,
            event="dp.refunded",
            actor=actor,
            details={
                "job": job_id,
                "scope": entry.scope_name,
                "grantee": entry.grantee,
                "period": entry.period,
                **_prefixed("refunded", Amount(charge.epsilon, charge.delta)),
                **_prefixed("spent", Amount(entry.spent_epsilon, entry.spent_delta)),
                "reason": reason[:2000],
            },
        )
        return True

    def left(self, *, scope: Scope, grantee: str) -> BudgetStatus:
        """What ``grantee`` has left in ``scope``'s lineage now (for the dry run)."""
        key = ledger_key(scope, grantee, today(self.clock))
        with self.db.read() as session:
            return self._status(session, key, limit_of(_dp(scope)))

    def of_job(
        self, session: Session, *, job_id: str, scope_of: Callable[[], Scope | None]
    ) -> JobBudget | None:
        """What job ``job_id`` spent and what its owner has left in that entry now; None for a job
        that was never charged (mock, no DP). ``scope_of``: the version whose budget governs the
        lineage now (its ``budget`` and ``delta`` give the limit), looked up only for a charged job."""
        charge = session.get(DpChargeRow, job_id)
        if charge is None:
            return None
        scope = scope_of()
        if scope is None:
            return None
        entry = session.get(DpLedgerRow, charge.ledger_id, populate_existing=True)
        assert entry is not None  # the foreign key guarantees it
        spent = Amount(entry.spent_epsilon, entry.spent_delta)
        limit = limit_of(_dp(scope))
        refunded = charge.refunded_at is not None
        status = BudgetStatus(
            scope=entry.scope_name,
            grantee=entry.grantee,
            period=entry.period,
            limit=limit.as_floats(),
            spent=spent.as_floats(),
            left=remaining(spent, limit).as_floats(),
        )
        this_job = Amount(0, 0) if refunded else Amount(charge.epsilon, charge.delta)
        return JobBudget(spent=this_job.as_floats(), refunded=refunded, status=status)

    def _entry(self, session: Session, key: LedgerKey) -> int:
        found = _find(session, key)
        if found is not None:
            return found.id
        try:
            with session.begin_nested():
                row = DpLedgerRow(
                    lineage=key.lineage,
                    scope_name=key.scope_name,
                    datasets=list(key.datasets),
                    grantee=key.grantee,
                    period=key.period,
                    spent_epsilon=0,
                    spent_delta=0,
                )
                session.add(row)
            return row.id
        except IntegrityError:
            # Another gateway created the entry between our read and insert (PostgreSQL): use it.
            raced = _find(session, key)
            assert raced is not None
            return raced.id

    def _status(self, session: Session, key: LedgerKey, limit: Amount) -> BudgetStatus:
        row = _find(session, key)
        spent = Amount(0, 0) if row is None else Amount(row.spent_epsilon, row.spent_delta)
        return BudgetStatus(
            scope=key.scope_name,
            grantee=key.grantee,
            period=key.period,
            limit=limit.as_floats(),
            spent=spent.as_floats(),
            left=remaining(spent, limit).as_floats(),
        )


def _find(session: Session, key: LedgerKey) -> DpLedgerRow | None:
    return session.execute(
        select(DpLedgerRow)
        .where(
            DpLedgerRow.lineage == key.lineage,
            DpLedgerRow.grantee == key.grantee,
            DpLedgerRow.period == key.period,
        )
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _dp(scope: Scope) -> DifferentialPrivacy:
    if scope.disclosure.dp is None:
        raise DpError(f"scope {scope.name!r} has no differential privacy: its jobs spend no budget")
    return scope.disclosure.dp


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0))


def _prefixed(prefix: str, amount: Amount) -> dict[str, object]:
    floats = amount.as_floats()
    return {f"{prefix}_epsilon": floats["epsilon"], f"{prefix}_delta": floats["delta"]}


def _details(job_id: str, key: LedgerKey, amount: Amount, status: BudgetStatus) -> dict[str, object]:
    return {
        "job": job_id,
        "scope": key.scope_name,
        "lineage": key.lineage,
        "grantee": key.grantee,
        "period": key.period,
        **_prefixed("charge", amount),
        "left_epsilon": status.left["epsilon"],
        "left_delta": status.left["delta"],
    }
