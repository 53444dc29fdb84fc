"""How a domain's per-person values cross to the gateway: the choice and what each costs."""

from __future__ import annotations

from enum import StrEnum


class Protection(StrEnum):
    """``paillier``: values encrypted under the owner's key; the gateway adds ciphertexts and the owner
    decrypts masked sums: no domain learns anything, at one Paillier encryption per person (slow).
    ``shares``: values split into two additive shares, one for the gateway and one for the other
    domain; for each released cell the other domain adds up its shares of the matched positions, so it
    learns how many people the released cells hold (which they release anyway), at almost no cost."""

    PAILLIER = "paillier"
    SHARES = "shares"
