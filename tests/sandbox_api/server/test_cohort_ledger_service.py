"""The cohort ledger service: sealed, per lineage, shared across versions and grantees, durable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from crypto.errors import IntegrityError
from policies.cohorts import Cell, Lineage, SketchRequest, element_key, lineage, lineage_of, sketch_of
from policies.examples import example_scope
from sandbox_api.errors import NotFound
from sandbox_api.server.services.cohort_ledger import CohortLedger
from sandbox_api.server.store.db import Database, open_database
from sandbox_api.server.store.migrate import upgrade
from sandbox_api.server.store.models import CohortLedgerBatchRow

K = 10
MASTER = bytes(range(100, 132))
FLU = lineage("flu-study-2026", ["health-bureau/citizens"])


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    upgrade(database)
    yield database
    database.dispose()


def cell(ledger: CohortLedger, units: range | list[int], *, of: Lineage = FLU) -> Cell:
    """What the sandbox would send for a row with these units (under the lineage's element secret)."""
    request: SketchRequest = ledger.request(of, min_units=K)
    return Cell((sketch_of(np.array(list(units)), element_key(request.secret), request.power_sums),))


def released(
    db: Database, ledger: CohortLedger, cells: list[Cell], *, job: str, of: Lineage = FLU
) -> list[bool]:
    with db.write() as session:
        return [d.released for d in ledger.check_and_record(session, of, cells, min_units=K, job_id=job)]


def test_a_total_then_the_total_without_three_people_across_jobs_and_a_restart(db: Database) -> None:
    """Attack 4 across a gateway restart: the second job is checked by a fresh service instance."""
    first = CohortLedger(master=MASTER, clock=FixedClock())
    assert released(db, first, [cell(first, range(2000))], job="j1") == [True]
    restarted = CohortLedger(master=MASTER, clock=FixedClock())
    assert released(db, restarted, [cell(restarted, range(3, 2000))], job="j2") == [False]
    assert released(db, restarted, [cell(restarted, range(2000))], job="j3") == [True]  # a repeat
    assert released(db, restarted, [cell(restarted, range(20, 2000))], job="j4") == [True]  # 20 away


def test_a_new_scope_version_or_a_revocation_keeps_the_lineage(db: Database) -> None:
    """The lineage is name + datasets: another version (other threshold, other grantees) shares it."""
    scope = example_scope()
    changed = scope.model_copy(update={"grantees": ("operator:mallory",), "purpose": "something else"})
    assert lineage_of(scope) == lineage_of(changed) == FLU
    ledger = CohortLedger(master=MASTER, clock=FixedClock())
    assert released(db, ledger, [cell(ledger, range(500))], job="alice-1") == [True]
    assert released(db, ledger, [cell(ledger, range(501), of=lineage_of(changed))], job="mallory-1") == [
        False
    ]


def test_another_lineage_has_its_own_ledger(db: Database) -> None:
    other = lineage("flu-study-2026", ["health-bureau/citizens", "health-bureau/visits"])
    ledger = CohortLedger(master=MASTER, clock=FixedClock())
    assert released(db, ledger, [cell(ledger, range(500))], job="a") == [True]
    assert released(db, ledger, [cell(ledger, range(501), of=other)], job="b", of=other) == [True]


def test_a_rolled_back_release_records_nothing(db: Database) -> None:
    ledger = CohortLedger(master=MASTER, clock=FixedClock())

    def release_that_fails() -> None:
        with db.write() as session:
            ledger.check_and_record(session, FLU, [cell(ledger, range(800))], min_units=K, job_id="lost")
            raise RuntimeError("the release transaction failed after the check")

    with pytest.raises(RuntimeError):
        release_that_fails()
    # Had the first been recorded, this one (one unit more) would be withheld.
    assert released(db, ledger, [cell(ledger, range(801))], job="kept") == [True]


def test_a_second_check_in_the_same_transaction_sees_what_the_first_recorded(db: Database) -> None:
    """The release writes the ledger's batch at its commit, not when it checks: a second check in the
    same transaction (nothing in the gateway does it, but the service allows it) must still decide
    against the first one's cohorts, or a total and the total without three people would both pass."""
    ledger = CohortLedger(master=MASTER, clock=FixedClock())
    with db.write() as session:
        first = ledger.check_and_record(session, FLU, [cell(ledger, range(2000))], min_units=K, job_id="j1")
        second = ledger.check_and_record(
            session, FLU, [cell(ledger, range(3, 2000))], min_units=K, job_id="j2"
        )
    assert [d.released for d in first] == [True]
    assert [d.released for d in second] == [False]
    restarted = CohortLedger(master=MASTER, clock=FixedClock())
    assert released(db, restarted, [cell(restarted, range(4, 2000))], job="j3") == [False]


def test_the_batches_are_sealed_and_bound_to_their_place(db: Database) -> None:
    ledger = CohortLedger(master=MASTER, clock=FixedClock())
    sent = cell(ledger, range(300))
    released(db, ledger, [sent], job="j1")
    released(db, ledger, [cell(ledger, range(5000, 5300))], job="j2")
    with db.write() as session:
        rows = (
            session.execute(select(CohortLedgerBatchRow).order_by(CohortLedgerBatchRow.seq)).scalars().all()
        )
        assert sent.cohorts[0].to_bytes() not in rows[0].sealed
        rows[0].sealed, rows[1].sealed = rows[1].sealed, rows[0].sealed  # swap two batches
    with pytest.raises(IntegrityError), db.write() as session:
        CohortLedger(master=MASTER, clock=FixedClock()).check_and_record(
            session, FLU, [cell(ledger, range(10))], min_units=K, job_id="j3"
        )


def test_replay_decides_against_the_ledger_as_it_stood(db: Database) -> None:
    ledger = CohortLedger(master=MASTER, clock=FixedClock())
    union_job = [cell(ledger, range(946)), cell(ledger, range(947))]
    assert released(db, ledger, union_job, job="u") == [True, False]
    assert released(db, ledger, [cell(ledger, range(1, 946))], job="v") == [False]
    with db.read() as session:
        again = ledger.replay(session, FLU, union_job, min_units=K, job_id="u")
        assert [d.released for d in again] == [True, False]
        with pytest.raises(NotFound):
            ledger.replay(session, FLU, union_job, min_units=K, job_id="never")


def test_reasons_name_the_rule_not_the_difference(db: Database) -> None:
    ledger = CohortLedger(master=MASTER, clock=FixedClock())
    with db.write() as session:
        decisions = ledger.check_and_record(
            session, FLU, [cell(ledger, range(100)), cell(ledger, range(102))], min_units=K, job_id="j"
        )
    reason = decisions[1].reason
    assert "fewer than 10" in reason
    assert "not disclosed" in reason
    assert "2" not in reason.replace("10", "")
