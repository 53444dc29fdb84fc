"""ECDH blinding through openmined-psi: commutative, keyed, and strict about what it re-blinds."""

from __future__ import annotations

from typing import Any

import pytest

from crypto.errors import CryptoError
from crypto.psi import TOKEN_BYTES, Blinders, blind, new_blinding_key, reblind


def test_doubly_blinded_tokens_match_whichever_party_blinds_first() -> None:
    a, b = new_blinding_key(), new_blinding_key()
    assert reblind(b, blind(a, ["P1", "P2"])) == reblind(a, blind(b, ["P1", "P2"]))


def test_a_token_under_one_key_does_not_match_the_same_unit_under_another() -> None:
    a, b = new_blinding_key(), new_blinding_key()
    assert set(blind(a, ["P1", "P2"])).isdisjoint(blind(b, ["P1", "P2"]))


def test_blinding_keeps_the_order_given() -> None:
    key = new_blinding_key()
    assert blind(key, ["P1", "P2", "P3"]) == tuple(blind(key, [u])[0] for u in ("P1", "P2", "P3"))


@pytest.mark.parametrize("token", [b"\x02" + bytes(31), b"\x05" + bytes(TOKEN_BYTES - 1)])
def test_reblind_refuses_what_is_not_a_point(token: bytes) -> None:
    with pytest.raises(CryptoError):
        reblind(new_blinding_key(), [token])


def test_the_key_is_not_in_its_repr() -> None:
    key = new_blinding_key()
    assert key.secret.hex() not in repr(key)


def test_blinding_over_worker_processes_gives_the_same_tokens_in_the_same_order() -> None:
    key, other = new_blinding_key(), new_blinding_key()
    units = [f"P{i:05d}" for i in range(301)]
    with Blinders(3, min_items=1) as workers:
        tokens = workers.blind(key, units)
        again = workers.reblind(other, tokens)  # the same workers serve a second call
        assert workers.worker_cpu_s > 0
    assert tokens == blind(key, units)
    assert again == reblind(other, tokens)


def test_worker_processes_refuse_what_is_not_a_point_and_go_on_serving() -> None:
    key = new_blinding_key()
    tokens = list(blind(key, [f"P{i}" for i in range(40)]))
    with Blinders(2, min_items=1) as workers:
        with pytest.raises(CryptoError):
            workers.reblind(key, [*tokens[:-1], b"\x05" + bytes(TOKEN_BYTES - 1)])
        assert workers.reblind(key, tokens) == reblind(key, tokens)


def test_few_items_are_blinded_here_without_starting_a_worker() -> None:
    key = new_blinding_key()
    with Blinders(2, min_items=100) as workers:
        workers.warm(99)
        assert workers.blind(key, ["P1", "P2"]) == blind(key, ["P1", "P2"])
        assert workers.worker_cpu_s == 0
        assert not workers._procs


def test_where_no_worker_can_start_the_calls_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_blinding_key()
    units = [f"P{i}" for i in range(20)]
    monkeypatch.setattr("crypto.psi.sys.executable", "/nonexistent/python")
    with Blinders(2, min_items=1) as workers:
        workers.warm(20)
        assert workers.blind(key, units) == blind(key, units)
        assert workers.workers == 1
        assert workers.worker_cpu_s == 0


@pytest.mark.parametrize("operation", ["blind", "reblind"])
def test_a_worker_that_died_is_replaced_and_the_call_still_answers(operation: str) -> None:
    """A worker killed between calls (the out-of-memory killer, an operator's signal) costs the call
    its speed, not its answer, and the next call gets fresh workers: a gateway must not fail every
    later job because one child died."""
    key = new_blinding_key()
    units = [f"P{i:04d}" for i in range(200)]
    tokens = blind(key, units)
    with Blinders(2, min_items=1) as workers:
        workers.warm(len(units))
        first = list(workers._procs)
        first[0].kill()
        first[0].wait()
        call = workers.blind if operation == "blind" else workers.reblind
        items: list[Any] = units if operation == "blind" else list(tokens)
        expected = blind(key, units) if operation == "blind" else reblind(key, tokens)
        assert call(key, items) == expected
        assert call(key, items) == expected
        assert workers._procs
        assert all(p.poll() is None for p in workers._procs)
        assert not set(workers._procs) & set(first)  # the survivors were stopped with the dead one
        assert all(p.poll() is not None for p in first)
