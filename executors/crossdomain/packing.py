"""Several non-negative integers in one Paillier plaintext: one ciphertext per person, not per column.

Slot ``i`` holds bits ``[64 i, 64 (i + 1))``. A person's value must stay below ``2 ** VALUE_BITS`` and a
sum runs over fewer than ``2 ** (SLOT_BITS - VALUE_BITS)`` people, so slots never carry into each other.

>>> unpack(pack([3, 250_000]) + pack([2, 10]), 2)
(5, 250010)
"""

from __future__ import annotations

from collections.abc import Sequence

SLOT_BITS = 64
VALUE_BITS = 40  # one person's value: below about 1.1e12 (1.1e10 at two decimals)
MAX_PEOPLE_BITS = SLOT_BITS - VALUE_BITS


def pack(values: Sequence[int]) -> int:
    """``values`` as one integer; each must be in ``[0, 2 ** VALUE_BITS)``.

    >>> pack([1, 2]) == 1 + (2 << SLOT_BITS)
    True
    """
    packed = 0
    for slot, value in enumerate(values):
        if not 0 <= value < 1 << VALUE_BITS:
            raise ValueError(f"slot {slot}: a packed value must be in [0, 2**{VALUE_BITS})")
        packed |= value << (SLOT_BITS * slot)
    return packed


def unpack(packed: int, slots: int) -> tuple[int, ...]:
    """The ``slots`` integers of a (possibly summed) packed value.

    >>> unpack(pack([7, 0, 9]), 3)
    (7, 0, 9)
    """
    mask = (1 << SLOT_BITS) - 1
    return tuple((packed >> (SLOT_BITS * slot)) & mask for slot in range(slots))
