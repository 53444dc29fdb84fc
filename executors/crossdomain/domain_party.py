"""One domain's part of a cross-domain job: it holds its own rows and keys, and nothing of the other's.

It blinds its units (``crypto.psi``), re-blinds the other domain's tokens without learning what they
are, and hands its per-person values over protected (``protection.Protection``): encrypted under its own
Paillier key (``crypto.paillier``), decrypting only masked sums later, or split into additive shares
(``crypto.sharing``), one for the gateway and one for the other domain. Everything it receives is a
token blinded by a key it lacks, a masked ciphertext, or a uniformly random share.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from crypto.paillier import PaillierKeyPair, decrypt, encrypt, new_keypair
from crypto.psi import BlindingKey, blind, new_blinding_key, reblind
from crypto.sharing import Shares, split
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.messages import (
    BlindedBatches,
    DecryptReply,
    DecryptRequest,
    GroupKey,
    Payloads,
    ReblindedBatches,
    Reply,
    Request,
    ShareSumReply,
)
from executors.crossdomain.packing import pack
from executors.crossdomain.padding import bucket
from executors.crossdomain.plan import CrossDomainPlan, Function, Side
from executors.crossdomain.protection import Protection
from executors.crossdomain.records import Person, PersonGroups, per_person

#: A dummy unit is 128 random bits: it matches nothing on the other side but looks like any token.
_DUMMY_BYTES = 16
T = TypeVar("T")


@dataclass(frozen=True)
class _Batch:
    group_key: GroupKey
    people: tuple[Person | None, ...]  # None: a dummy, padding the batch to its bucket


class DomainParty:
    """The executor of one domain for one job, with its own keys (``new_party`` makes them).

    ``protection``: how its values are handed over, or None when the gateway does not need them;
    ``paillier``: its key pair, required under ``Protection.PAILLIER``.
    """

    def __init__(
        self,
        side: Side,
        people: PersonGroups,
        *,
        blinding: BlindingKey,
        protection: Protection | None = None,
        paillier: PaillierKeyPair | None = None,
        one_row: bool = False,
    ) -> None:
        if protection is Protection.PAILLIER and paillier is None:
            raise CrossDomainProtocolError("a domain that encrypts its values needs its Paillier key")
        self.side = side
        self._blinding = blinding
        self._protection = protection
        self._paillier = paillier if protection is Protection.PAILLIER else None
        # As the plan says (decided at submit), not as the rows say: what crosses never depends on
        # whether one person has a second row.
        self._one_row = one_row
        #: Its distinct people in the protocol (any group): the most people of released cells it can be
        #: asked to unblind (``rounds._unblinded``).
        self.people = len({p.unit for members in people.groups.values() for p in members})
        self._batches = tuple(_padded(key, members) for key, members in _shuffled(people.groups.items()))
        self._slots = len(next(iter(people.groups.values()))[0].slots) if people.groups else 1
        shares = (
            [split(self._slot_matrix(b)) for b in self._batches] if protection is Protection.SHARES else []
        )
        self._gateway_shares = tuple(gateway.tobytes() for gateway, _ in shares)
        self._helper_shares = tuple(helper.tobytes() for _, helper in shares)
        self._held: tuple[Shares, ...] = ()  # the other domain's values: this domain's shares of them

    @property
    def paillier_keys(self) -> PaillierKeyPair | None:
        """Its Paillier key pair under ``Protection.PAILLIER`` when its values are handed over (a party
        run round by round seals it to itself, to decrypt in a later round), else None."""
        return self._paillier

    def blinded(self) -> BlindedBatches:
        """Step 1 (to the other domain): this domain's units blinded with its key, batch by batch,
        with the other domain's shares of its values under secret sharing."""
        return BlindedBatches(
            self.side, tuple(self._tokens(batch) for batch in self._batches), self._helper_shares
        )

    def reblinded(self, other: BlindedBatches) -> ReblindedBatches:
        """Step 2 (to the gateway): the other domain's tokens raised to this domain's key, order kept."""
        self.hold(other)
        return ReblindedBatches(other.origin, tuple(reblind(self._blinding, b) for b in other.batches))

    def hold(self, other: BlindedBatches) -> None:
        """Keep this domain's shares of the other domain's values, which came with its tokens (a party
        run round by round, in a fresh process each time, is handed them again to answer)."""
        if other.origin is self.side:
            raise CrossDomainProtocolError("a domain re-blinds only the other domain's tokens")
        if other.helper_shares:
            self._held = tuple(
                np.frombuffer(raw, dtype=np.uint64).reshape(len(batch), -1)
                for raw, batch in zip(other.helper_shares, other.batches, strict=True)
            )

    def payloads(self) -> Payloads:
        """Step 3 (to the gateway): group keys, and the protected values aligned with the tokens."""
        keys = self._paillier
        ciphertexts: tuple[tuple[int, ...], ...] = ()
        if keys is not None:
            zero = pack([0] * self._slots)
            ciphertexts = tuple(
                tuple(encrypt(keys.public, zero if p is None else pack(p.slots)) for p in batch.people)
                for batch in self._batches
            )
        return Payloads(
            origin=self.side,
            group_keys=tuple(batch.group_key for batch in self._batches),
            one_row_per_unit=self._one_row,
            paillier_n=None if keys is None else keys.public.n,
            slots=self._slots,
            ciphertexts=ciphertexts,
            gateway_shares=self._gateway_shares,
        )

    def answer(self, request: Request) -> Reply:
        """Step 5 (to the gateway): decrypt masked sums of this domain's values, or add up this
        domain's shares of the other domain's values over the positions of released cells."""
        if isinstance(request, DecryptRequest):
            if self._paillier is None or request.origin is not self.side:
                raise CrossDomainProtocolError("a domain decrypts only the sums of its own encrypted values")
            return DecryptReply(self.side, tuple(decrypt(self._paillier, c) for c in request.ciphertexts))
        if request.origin is self.side or not self._held:
            raise CrossDomainProtocolError("a domain adds up only its shares of the other domain's values")
        sums = [
            self._held[batch][list(positions)].sum(axis=0, dtype=np.uint64)
            for batch, positions in request.cells
        ]
        return ShareSumReply(request.origin, np.asarray(sums, dtype=np.uint64).tobytes())

    def _tokens(self, batch: _Batch) -> tuple[bytes, ...]:
        units = [secrets.token_hex(_DUMMY_BYTES) if p is None else p.unit for p in batch.people]
        return blind(self._blinding, units)

    def _slot_matrix(self, batch: _Batch) -> Shares:
        rows = [(0,) * self._slots if p is None else p.slots for p in batch.people]
        return np.asarray(rows, dtype=np.uint64).reshape(len(rows), self._slots)


def new_party(
    plan: CrossDomainPlan,
    side: Side,
    rows: pd.DataFrame,
    *,
    protection: Protection = Protection.PAILLIER,
    blinding: BlindingKey | None = None,
    paillier: PaillierKeyPair | None = None,
) -> DomainParty:
    """``side``'s party over its own ``rows``, with fresh keys unless given. Its values are handed over
    (with ``protection``) only when summed, or counted because the plan makes its rows per person
    weight ``COUNT(*)``: decided from the plan, never from the rows."""
    part = plan.side(side)
    people = per_person(rows, part)
    counts_rows = any(a.function is Function.COUNT for a in plan.aggregates)
    needs_values = bool(part.sums) or (counts_rows and plan.weighting_side() is side)
    if not needs_values:
        return DomainParty(side, people, blinding=blinding or new_blinding_key(), one_row=part.one_row)
    if protection is Protection.PAILLIER:
        paillier = paillier or new_keypair()
    return DomainParty(
        side,
        people,
        blinding=blinding or new_blinding_key(),
        protection=protection,
        paillier=paillier,
        one_row=part.one_row,
    )


def _padded(key: GroupKey, members: Sequence[Person]) -> _Batch:
    people: list[Person | None] = [*members, *([None] * (bucket(len(members)) - len(members)))]
    return _Batch(key, tuple(_shuffled(people)))


def _shuffled(items: Iterable[T]) -> list[T]:
    """``items`` in a uniformly random order drawn from the operating system's secure source.

    One draw of 128 random bits per item, sorted (ties have probability about n^2 / 2^129): the same
    distribution as a Fisher-Yates shuffle from ``secrets``, which would ask the source once per item.
    """
    out = list(items)
    if len(out) < 2:
        return out
    keys = np.frombuffer(secrets.token_bytes(16 * len(out)), dtype=np.uint64).reshape(2, len(out))
    return [out[i] for i in np.lexsort(keys)]
