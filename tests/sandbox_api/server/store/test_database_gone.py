"""Only the database going away counts as an outage (a 503 to the caller, recovery in the runner): a
statement PostgreSQL refused (a deadlock, a serialisation failure, a timeout) is an OperationalError
too, but the server is there, and recovering would re-queue jobs whose leases are alive."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from sandbox_api.server.store.db import database_gone


class _Refusal(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("refused")
        self.sqlstate = sqlstate


def _error(sqlstate: str | None) -> OperationalError:
    return OperationalError("SELECT 1", {}, _Refusal(sqlstate))


@pytest.mark.parametrize("sqlstate", ["08006", "08001", "57P01", "57P02", "57P03"])
def test_a_lost_connection_or_a_shutdown_is_the_database_gone(sqlstate: str) -> None:
    assert database_gone(_error(sqlstate))


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "57014", "55P03"])
def test_a_refused_statement_is_not_the_database_gone(sqlstate: str) -> None:
    assert not database_gone(_error(sqlstate))


def test_an_error_from_no_server_at_all_is_the_database_gone() -> None:
    assert database_gone(_error(None))
