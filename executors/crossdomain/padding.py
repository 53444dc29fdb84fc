"""Batch sizes that reveal only their order of magnitude.

A domain pads each batch of blinded tokens with dummies up to a *bucket*: the smallest number of the form
``m * 2 ** e`` with ``8 <= m < 16`` that holds it, so the other parties learn a size to within 12.5 %
(and nothing about a small group's exact size), for at most 12.5 % more work.

>>> [bucket(n) for n in (0, 1, 9, 17, 100, 1000)]
[8, 8, 9, 18, 104, 1024]
"""

from __future__ import annotations

MIN_BUCKET = 8


def bucket(size: int) -> int:
    """The padded size of a batch of ``size`` real tokens.

    >>> bucket(15), bucket(16), bucket(33)
    (15, 16, 36)
    """
    if size <= MIN_BUCKET:
        return MIN_BUCKET
    step = 1 << max(0, size.bit_length() - 4)
    return -(-size // step) * step
