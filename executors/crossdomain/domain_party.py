"""One domain's part of a cross-domain job: it holds its own rows and keys, and nothing of the other's.

It blinds its units (``crypto.psi``), re-blinds the other domain's tokens without learning what they
are, encrypts its per-person values under its own Paillier key (``crypto.paillier``), and decrypts only
masked sums. Everything it receives is a token blinded by a key it lacks, or a masked ciphertext.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pandas as pd

from crypto.paillier import PaillierKeyPair, decrypt, encrypt, new_keypair
from crypto.psi import BlindingKey, blind, new_blinding_key, reblind
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.messages import (
    BlindedBatches,
    DecryptReply,
    DecryptRequest,
    GroupKey,
    Payloads,
    ReblindedBatches,
)
from executors.crossdomain.packing import pack
from executors.crossdomain.padding import bucket
from executors.crossdomain.plan import CrossDomainPlan, Function, Side
from executors.crossdomain.records import Person, PersonGroups, per_person

#: A dummy unit is 128 random bits: it matches nothing on the other side but looks like any token.
_DUMMY_BYTES = 16
T = TypeVar("T")


@dataclass(frozen=True)
class _Batch:
    group_key: GroupKey
    people: tuple[Person | None, ...]  # None: a dummy, padding the batch to its bucket


class DomainParty:
    """The executor of one domain for one job, with its own keys: ``paillier`` only when the gateway
    needs this domain's values (``new_party`` decides and makes fresh keys)."""

    def __init__(
        self, side: Side, people: PersonGroups, *, blinding: BlindingKey, paillier: PaillierKeyPair | None
    ) -> None:
        self.side = side
        self._blinding = blinding
        self._paillier = paillier
        self._one_row = people.one_row_per_unit
        self._batches = tuple(_padded(key, members) for key, members in _shuffled(people.groups.items()))
        self._slots = len(next(iter(people.groups.values()))[0].slots) if people.groups else 1

    def blinded(self) -> BlindedBatches:
        """Step 1 (to the other domain): this domain's units, blinded with its key, batch by batch."""
        return BlindedBatches(self.side, tuple(self._tokens(batch) for batch in self._batches))

    def reblinded(self, other: BlindedBatches) -> ReblindedBatches:
        """Step 2 (to the gateway): the other domain's tokens raised to this domain's key, order kept."""
        if other.origin is self.side:
            raise CrossDomainProtocolError("a domain re-blinds only the other domain's tokens")
        return ReblindedBatches(other.origin, tuple(reblind(self._blinding, b) for b in other.batches))

    def payloads(self) -> Payloads:
        """Step 3 (to the gateway): group keys, and the encrypted values aligned with the tokens."""
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
        )

    def decrypted(self, request: DecryptRequest) -> DecryptReply:
        """Step 5 (to the gateway): masked sums decrypted; the masks make them look uniformly random."""
        if self._paillier is None:
            raise CrossDomainProtocolError("this domain encrypted no values, so it decrypts nothing")
        return DecryptReply(tuple(decrypt(self._paillier, c) for c in request.ciphertexts))

    def _tokens(self, batch: _Batch) -> tuple[bytes, ...]:
        units = [secrets.token_hex(_DUMMY_BYTES) if p is None else p.unit for p in batch.people]
        return blind(self._blinding, units)


def new_party(
    plan: CrossDomainPlan,
    side: Side,
    rows: pd.DataFrame,
    *,
    blinding: BlindingKey | None = None,
    paillier: PaillierKeyPair | None = None,
) -> DomainParty:
    """``side``'s party over its own ``rows``, with fresh keys unless given: a Paillier key only when its
    values are summed, or counted because it has several rows per unit."""
    people = per_person(rows, plan.side(side))
    counts_rows = any(a.function is Function.COUNT for a in plan.aggregates)
    needs_values = bool(plan.side(side).sums) or (counts_rows and not people.one_row_per_unit)
    return DomainParty(
        side,
        people,
        blinding=blinding or new_blinding_key(),
        paillier=(paillier or new_keypair()) if needs_values else None,
    )


def _padded(key: GroupKey, members: Sequence[Person]) -> _Batch:
    people: list[Person | None] = [*members, *([None] * (bucket(len(members)) - len(members)))]
    return _Batch(key, tuple(_shuffled(people)))


def _shuffled(items: Iterable[T]) -> list[T]:
    out = list(items)
    secrets.SystemRandom().shuffle(out)
    return out
