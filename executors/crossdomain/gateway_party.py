"""The gateway's part of a cross-domain job: match doubly blinded tokens, add ciphertexts, release cells.

It holds no blinding key and no Paillier private key. It sees tokens blinded by both domains' keys (so
neither it nor either domain alone can tell whose they are), ciphertexts it cannot decrypt, and, for
cells that reach ``min_units`` distinct people only, the decrypted sums. A cell below ``min_units`` is
never decrypted by anyone: its values exist nowhere in the clear, only its count of matched people,
which the disclosure rule itself needs (Ion et al. 2020 leak this intersection size to one party too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from crypto.paillier import PaillierPublicKey, add, add_plain, random_mask
from executors.crossdomain.errors import CrossDomainProtocolError, CrossDomainUnsupported
from executors.crossdomain.messages import DecryptReply, DecryptRequest, Payloads, ReblindedBatches
from executors.crossdomain.packing import MAX_PEOPLE_BITS, unpack
from executors.crossdomain.plan import Aggregate, CrossDomainPlan, Function, Side

UNITS = "_sbx_units"  # the hidden distinct-unit column the output check reads (policies.output.UNITS)


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
    """Released cells whose sums await decryption, with the masks that hide them from the domains."""

    cells: tuple[Cell, ...]
    requests: Mapping[Side, DecryptRequest]
    masks: Mapping[Side, tuple[int, ...]]


class Gateway:
    """The matcher and combiner; ``min_units``: the scope's k (cells below it are never decrypted)."""

    def __init__(self, plan: CrossDomainPlan, *, min_units: int) -> None:
        self._plan = plan
        self._min_units = min_units
        self._tokens: dict[Side, ReblindedBatches] = {}
        self._payloads: dict[Side, Payloads] = {}

    def receive_tokens(self, message: ReblindedBatches) -> None:
        self._tokens[message.origin] = message

    def receive_payloads(self, message: Payloads) -> None:
        self._payloads[message.origin] = message

    def match(self) -> Pending:
        """Match every pair of batches, refuse what cannot be computed exactly, and mask the sums of
        the cells that reach ``min_units``."""
        if set(self._tokens) != set(Side) or set(self._payloads) != set(Side):
            raise CrossDomainProtocolError("the gateway needs both domains' tokens and payloads first")
        _refuse_inexact(self._plan, self._payloads)
        cells = _cells(self._tokens[Side.LEFT].batches, self._tokens[Side.RIGHT].batches)
        released = tuple(c for c in cells if c.units >= self._min_units)
        if any(c.units >= 1 << MAX_PEOPLE_BITS for c in released):
            raise CrossDomainUnsupported("a cell holds too many people for exact encrypted sums")
        requests: dict[Side, DecryptRequest] = {}
        masks: dict[Side, tuple[int, ...]] = {}
        for side, payload in self._payloads.items():
            if payload.paillier_n is None:
                continue
            public = PaillierPublicKey(payload.paillier_n)
            side_masks = tuple(random_mask(public) for _ in released)
            requests[side] = DecryptRequest(
                tuple(
                    add_plain(public, add(public, _matched(payload, cell, side)), mask)
                    for cell, mask in zip(released, side_masks, strict=True)
                )
            )
            masks[side] = side_masks
        return Pending(cells=cells, requests=requests, masks=masks)

    def table(self, pending: Pending, replies: Mapping[Side, DecryptReply]) -> pd.DataFrame:
        """The result table: group keys, aggregates and ``_sbx_units``; a cell below ``min_units`` has
        its count of people only (the output check drops it) and no values."""
        sums: dict[Side, list[tuple[int, ...]]] = {}
        for side, reply in replies.items():
            payload = self._payloads[side]
            masks = pending.masks[side]
            if len(reply.masked) != len(masks):
                raise CrossDomainProtocolError("a decrypt reply does not answer its request")
            sums[side] = [unpack(m - r, payload.slots) for m, r in zip(reply.masked, masks, strict=True)]
        rows: list[list[object]] = []
        released = 0
        for cell in pending.cells:
            keys = (
                *self._payloads[Side.LEFT].group_keys[cell.left_batch],
                *self._payloads[Side.RIGHT].group_keys[cell.right_batch],
            )
            if cell.units >= self._min_units:
                cell_sums = {side: values[released] for side, values in sums.items()}
                released += 1
                values: list[float | None] = [
                    self._aggregate(a, cell, cell_sums) for a in self._plan.aggregates
                ]
            else:
                values = [None] * len(self._plan.aggregates)
            rows.append([*keys, *values, cell.units])
        columns = [
            *self._plan.left.group_by,
            *self._plan.right.group_by,
            *(a.output for a in self._plan.aggregates),
            UNITS,
        ]
        table = pd.DataFrame(rows, columns=columns)
        for aggregate in self._plan.aggregates:
            if aggregate.function in (Function.COUNT_UNITS, Function.COUNT):
                table[aggregate.output] = table[aggregate.output].astype("Int64")
        # Canonical row order (batches arrive shuffled): replay must give the same bytes.
        order = [*self._plan.left.group_by, *self._plan.right.group_by]
        return table.sort_values(order, kind="stable").reset_index(drop=True) if order else table

    def _aggregate(self, aggregate: Aggregate, cell: Cell, sums: Mapping[Side, tuple[int, ...]]) -> float:
        if aggregate.function is Function.COUNT_UNITS:
            return float(cell.units)
        if aggregate.function is Function.COUNT:
            many = _many_rows_side(self._payloads)
            return float(cell.units if many is None else sums[many][0])
        side, column = aggregate.side, aggregate.column
        if side is None or column is None:
            raise CrossDomainUnsupported(f"{aggregate.output}: SUM and AVG name a side and a column")
        part = self._plan.side(side)
        values = sums[side]
        total = values[1 + part.sums.index(column)] / 10**part.decimals
        return float(total if aggregate.function is Function.SUM else total / values[0])


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


def _matched(payload: Payloads, cell: Cell, side: Side) -> list[int]:
    batch, positions = (
        (cell.left_batch, cell.left_positions)
        if side is Side.LEFT
        else (cell.right_batch, cell.right_positions)
    )
    return [payload.ciphertexts[batch][p] for p in positions]


def _many_rows_side(payloads: Mapping[Side, Payloads]) -> Side | None:
    """The one side with several rows per unit (its row counts weight the join), or None."""
    many = [side for side in Side if not payloads[side].one_row_per_unit]
    return many[0] if len(many) == 1 else None


def _refuse_inexact(plan: CrossDomainPlan, payloads: Mapping[Side, Payloads]) -> None:
    both_many = not any(payloads[side].one_row_per_unit for side in Side)
    for aggregate in plan.aggregates:
        if aggregate.function is Function.COUNT_UNITS:
            continue
        if both_many:
            raise CrossDomainUnsupported(
                f"{aggregate.output}: both domains have several rows per unit, so COUNT/SUM/AVG over "
                "the join would multiply them; pre-aggregate one side per unit, or ask for "
                "COUNT(DISTINCT unit). Supported: COUNT(DISTINCT unit) always; COUNT(*), SUM and AVG "
                "when one side has one row per unit"
            )
        if aggregate.side is not None and not payloads[_other(aggregate.side)].one_row_per_unit:
            raise CrossDomainUnsupported(
                f"{aggregate.output}: SUM/AVG of a {aggregate.side.value} column would be weighted by "
                "the other domain's rows per unit; sum a column of the side with several rows per unit "
                "instead"
            )
        needs = _many_rows_side(payloads) if aggregate.function is Function.COUNT else aggregate.side
        if needs is not None and payloads[needs].paillier_n is None:
            raise CrossDomainProtocolError(f"{aggregate.output}: the {needs.value} domain sent no values")


def _other(side: Side) -> Side:
    return Side.RIGHT if side is Side.LEFT else Side.LEFT
