"""The gateway's part of a cross-domain job: match doubly blinded tokens, add ciphertexts, release cells.

It holds no blinding key and no Paillier private key. It sees tokens blinded by both domains' keys (so
neither it nor either domain alone can tell whose they are), ciphertexts it cannot decrypt or uniform
shares, and, for cells that reach ``min_units`` distinct people only, their sums. A cell below
``min_units`` is never summed by anyone: its values exist nowhere in the clear, only its count of
matched people, which the disclosure rule itself needs (Ion et al. 2020 leak this intersection size to
one party too).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from crypto.paillier import PaillierPublicKey, add, add_plain, random_mask
from crypto.sharing import Shares, combine
from executors.crossdomain.errors import CrossDomainProtocolError, CrossDomainUnsupported
from executors.crossdomain.messages import (
    DecryptReply,
    DecryptRequest,
    Payloads,
    ReblindedBatches,
    Reply,
    Request,
    ShareSumReply,
    ShareSumRequest,
)
from executors.crossdomain.packing import MAX_PEOPLE_BITS, unpack
from executors.crossdomain.plan import Aggregate, CrossDomainPlan, Function, Side, inexact
from executors.crossdomain.records import sum_slots
from policies.output import UNITS

#: Marks a table whose group keys the gateway already chose by DP partition selection
#: (``policies.dp.noise.SELECTED``, not imported: that module loads OpenDP, which a domain's sandbox
#: never needs): the release function does not choose them again.
SELECTED = "_sbx_dp_selected"

R = TypeVar("R", DecryptReply, ShareSumReply)
#: Chooses cells before any is summed: gets each candidate cell's group keys and its number of matched
#: people, returns the indices of the cells to sum and release.
Select = Callable[[Sequence[tuple[tuple[object, ...], int]]], Collection[int]]


@dataclass(frozen=True)
class Cell:
    """One output row: a batch of each side, the positions matched in each, and its people count."""

    left_batch: int
    right_batch: int
    left_positions: tuple[int, ...]
    right_positions: tuple[int, ...]

    @property
    def units(self) -> int:
        return len(self.left_positions)


@dataclass(frozen=True)
class Pending:
    """Released cells whose sums await a domain's answer: ``requests`` by the domain that answers,
    ``masks`` (Paillier) and ``own_sums`` (the gateway's share sums) by the side whose values they are."""

    cells: tuple[Cell, ...]
    requests: tuple[tuple[Side, Request], ...]
    masks: Mapping[Side, tuple[int, ...]]
    own_sums: Mapping[Side, Shares]
    released: tuple[Cell, ...] = ()  # the cells summed and put in the table


class Gateway:
    """The matcher and combiner; ``min_units``: the scope's k (cells below it are never summed);
    ``select``: under differential privacy with keys from the data, OpenDP's noisy threshold on each
    cell's matched people (or, on replay, the keys released), applied before any cell is summed, so
    that no domain is asked for the sums of a cell that is not released."""

    def __init__(self, plan: CrossDomainPlan, *, min_units: int, select: Select | None = None) -> None:
        refused = inexact(plan)
        if refused:  # from the plan alone (the scope and the catalog), before any data
            raise CrossDomainUnsupported("; ".join(f"{output}: {why}" for output, why in refused))
        self._plan = plan
        self._min_units = min_units
        self._select = select
        self._tokens: dict[Side, ReblindedBatches] = {}
        self._payloads: dict[Side, Payloads] = {}

    def receive_tokens(self, message: ReblindedBatches) -> None:
        self._tokens[message.origin] = message

    def receive_payloads(self, message: Payloads) -> None:
        self._payloads[message.origin] = message

    def match(self) -> Pending:
        """Match every pair of batches, refuse what cannot be computed exactly, and ask for the sums of
        the cells that reach ``min_units`` (masked, or as share sums)."""
        if set(self._tokens) != set(Side) or set(self._payloads) != set(Side):
            raise CrossDomainProtocolError("the gateway needs both domains' tokens and payloads first")
        _refuse_missing_values(self._plan, self._payloads)
        cells = _cells(self._tokens[Side.LEFT].batches, self._tokens[Side.RIGHT].batches)
        released = self._chosen(tuple(c for c in cells if c.units >= self._min_units))
        summed = any(a.function is not Function.COUNT_UNITS for a in self._plan.aggregates)
        if summed and any(c.units >= 1 << MAX_PEOPLE_BITS for c in released):
            # Refused at submit from the catalog's row counts (``crossdomain_jobs._size_findings``):
            # reached only by a plan that was not checked there.
            raise CrossDomainUnsupported("a cell holds too many people for exact sums")
        requests: list[tuple[Side, Request]] = []
        masks: dict[Side, tuple[int, ...]] = {}
        own_sums: dict[Side, Shares] = {}
        for side, payload in self._payloads.items():
            if payload.paillier_n is not None:
                public = PaillierPublicKey(payload.paillier_n)
                masks[side] = tuple(random_mask(public) for _ in released)
                ciphertexts = tuple(
                    add_plain(public, add(public, _matched(payload.ciphertexts, cell, side)), mask)
                    for cell, mask in zip(released, masks[side], strict=True)
                )
                requests.append((side, DecryptRequest(side, ciphertexts)))
            elif payload.gateway_shares:
                shares = [
                    np.frombuffer(raw, dtype=np.uint64).reshape(-1, payload.slots)
                    for raw in payload.gateway_shares
                ]
                own_sums[side] = np.asarray(
                    [_positions_sum(shares, cell, side) for cell in released], dtype=np.uint64
                ).reshape(len(released), payload.slots)
                positions = tuple(_batch_positions(cell, side) for cell in released)
                requests.append((_other(side), ShareSumRequest(side, positions)))
        return Pending(
            cells=cells, requests=tuple(requests), masks=masks, own_sums=own_sums, released=released
        )

    def released(self, pending: Pending) -> list[Cell]:
        """The cells summed and put in the table (those of at least ``min_units`` people, or under
        differential privacy those the noisy threshold kept), in the order of ``table``'s ``hidden``
        columns."""
        return list(pending.released)

    def table(
        self,
        pending: Pending,
        replies: Sequence[Reply],
        *,
        hidden: Mapping[str, Sequence[object]] | None = None,
    ) -> pd.DataFrame:
        """The result table of the cells of at least ``min_units`` people: group keys, aggregates and
        ``_sbx_units``. A smaller cell is left out here, before any ordering or limit, as the rewritten
        query of a single-domain job leaves it out inside the query (its values were never summed).
        ``hidden``: more hidden ``_sbx_`` columns, one value per cell of ``released`` (the ledger's
        cohort sketches)."""
        sums = self._sums(pending, replies)
        released = self.released(pending)
        rows: list[list[object]] = []
        for index, cell in enumerate(released):
            keys = self._keys(cell)
            cell_sums = {side: values[index] for side, values in sums.items()}
            values = [self._aggregate(a, cell, cell_sums) for a in self._plan.aggregates]
            rows.append([*keys, *values, cell.units])
        columns = [
            *self._plan.left.group_by,
            *self._plan.right.group_by,
            *(a.output for a in self._plan.aggregates),
            UNITS,
        ]
        table = pd.DataFrame(rows, columns=columns)
        if self._select is not None:
            table[SELECTED] = True
        for name, column in (hidden or {}).items():
            if len(column) != len(released):
                raise CrossDomainProtocolError(f"{name}: one value per released cell is needed")
            table[name] = pd.Series(list(column), dtype=object)
        for aggregate in self._plan.aggregates:
            counted = aggregate.function in (Function.COUNT_UNITS, Function.COUNT, Function.COUNT_VALUES)
            # A SUM or AVG of no non-NULL values is NULL (NaN here, null in the Arrow result).
            table[aggregate.output] = table[aggregate.output].astype("int64" if counted else "float64")
        # Canonical row order (batches arrive shuffled): replay must give the same bytes.
        order = [*self._plan.left.group_by, *self._plan.right.group_by]
        return table.sort_values(order, kind="stable").reset_index(drop=True) if order else table

    def _keys(self, cell: Cell) -> tuple[object, ...]:
        return (
            *self._payloads[Side.LEFT].group_keys[cell.left_batch],
            *self._payloads[Side.RIGHT].group_keys[cell.right_batch],
        )

    def _chosen(self, candidates: tuple[Cell, ...]) -> tuple[Cell, ...]:
        if self._select is None:
            return candidates
        kept = set(self._select([(self._keys(c), c.units) for c in candidates]))
        return tuple(c for i, c in enumerate(candidates) if i in kept)

    def _sums(self, pending: Pending, replies: Sequence[Reply]) -> dict[Side, list[tuple[int, ...]]]:
        """Per side with values, per released cell, the summed slots: unmasked, or both shares added."""
        sums: dict[Side, list[tuple[int, ...]]] = {}
        for side, masks in pending.masks.items():
            decrypted = _answer(replies, DecryptReply, side)
            if len(decrypted.masked) != len(masks):
                raise CrossDomainProtocolError("a decrypt reply does not answer its request")
            slots = self._payloads[side].slots
            sums[side] = [unpack(m - r, slots) for m, r in zip(decrypted.masked, masks, strict=True)]
        for side, own in pending.own_sums.items():
            reply = _answer(replies, ShareSumReply, side)
            theirs = np.frombuffer(reply.sums, dtype=np.uint64).reshape(own.shape)
            sums[side] = [tuple(int(v) for v in row) for row in combine(own, theirs)]
        return sums

    def _aggregate(
        self, aggregate: Aggregate, cell: Cell, sums: Mapping[Side, tuple[int, ...]]
    ) -> float | None:
        if aggregate.function is Function.COUNT_UNITS:
            return float(cell.units)
        if aggregate.function is Function.COUNT:
            many = self._plan.weighting_side()
            return float(cell.units if many is None else sums[many][0])
        side, column = aggregate.side, aggregate.column
        if side is None or column is None:
            raise CrossDomainUnsupported(f"{aggregate.output}: SUM and AVG name a side and a column")
        part = self._plan.side(side)
        values = sums[side]
        positive, negative, count = (values[i] for i in sum_slots(part.sums.index(column)))
        if aggregate.function is Function.COUNT_VALUES:
            return float(count)
        if count == 0:
            return None  # SQL: the SUM and the AVG of no non-NULL values are NULL
        total = (positive - negative) / 10**part.decimals
        return float(total if aggregate.function is Function.SUM else total / count)


def _cells(left: Sequence[Sequence[bytes]], right: Sequence[Sequence[bytes]]) -> tuple[Cell, ...]:
    where: dict[bytes, list[tuple[int, int]]] = {}
    for batch, tokens in enumerate(right):
        for position, token in enumerate(tokens):
            where.setdefault(token, []).append((batch, position))
    matched: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for left_batch, tokens in enumerate(left):
        for left_position, token in enumerate(tokens):
            for right_batch, right_position in where.get(token, ()):
                pair = matched.setdefault((left_batch, right_batch), ([], []))
                pair[0].append(left_position)
                pair[1].append(right_position)
    return tuple(
        Cell(lb, rb, tuple(positions[0]), tuple(positions[1]))
        for (lb, rb), positions in sorted(matched.items())
    )


def _answer(replies: Sequence[Reply], kind: type[R], side: Side) -> R:
    answers = [r for r in replies if isinstance(r, kind) and r.origin is side]
    if len(answers) != 1:
        raise CrossDomainProtocolError(f"no single answer came back for the {side.value} domain's values")
    return answers[0]


def _batch_positions(cell: Cell, side: Side) -> tuple[int, tuple[int, ...]]:
    if side is Side.LEFT:
        return cell.left_batch, cell.left_positions
    return cell.right_batch, cell.right_positions


def _matched(ciphertexts: Sequence[Sequence[int]], cell: Cell, side: Side) -> list[int]:
    batch, positions = _batch_positions(cell, side)
    return [ciphertexts[batch][p] for p in positions]


def _positions_sum(shares: Sequence[Shares], cell: Cell, side: Side) -> Shares:
    batch, positions = _batch_positions(cell, side)
    total: Shares = shares[batch][list(positions)].sum(axis=0, dtype=np.uint64)
    return total


def _refuse_missing_values(plan: CrossDomainPlan, payloads: Mapping[Side, Payloads]) -> None:
    """A domain whose values the plan needs must have handed them over (a protocol error otherwise)."""
    for aggregate in plan.aggregates:
        if aggregate.function is Function.COUNT_UNITS:
            continue
        needs = plan.weighting_side() if aggregate.function is Function.COUNT else aggregate.side
        sent = payloads[needs] if needs is not None else None
        # A domain with no people after its filters has no batches, so nothing to hand over.
        if sent is not None and sent.group_keys and sent.paillier_n is None and not sent.gateway_shares:
            raise CrossDomainProtocolError(
                f"{aggregate.output}: the {sent.origin.value} domain sent no values"
            )


def _other(side: Side) -> Side:
    return Side.RIGHT if side is Side.LEFT else Side.LEFT
