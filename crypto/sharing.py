"""Additive secret sharing over the integers modulo 2**64 (e.g. Cramer, Damgård and Nielsen, "Secure
Multiparty Computation and Secret Sharing", 2015, §3.2; the sharing SPDZ-style protocols use).

Why not a library such as MPyC: the private join needs 2-out-of-2 sharing (the gateway and the other
domain each hold one share, and neither alone may learn anything). MPyC shares with Shamir's threshold
scheme and tolerates ``t < m/2`` corrupt parties, so with two share holders its threshold is 0: each
share would be the value itself. Additive sharing has no such floor, and it is not a cryptographic
primitive to get wrong: a value minus a uniform draw from the operating system's secure source (a
one-time pad over ``Z_{2^64}``), secure without any computational assumption; the numbers are
numpy's wrapping ``uint64`` arithmetic.

A value ``v`` is split into ``a`` drawn uniformly at random and ``b = v - a (mod 2**64)``: either share
alone is uniformly distributed and says nothing about ``v``; sums of shares are shares of the sum, so two
parties that each add up their shares of the same positions reveal, together, only the total.

>>> values = np.array([[3, 250], [4, 10]], dtype=np.uint64)
>>> a, b = split(values)
>>> combine(a.sum(axis=0, dtype=np.uint64), b.sum(axis=0, dtype=np.uint64)).tolist()
[7, 260]
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

Shares = npt.NDArray[np.uint64]


def split(values: Shares) -> tuple[Shares, Shares]:
    """Two shares of ``values`` (any shape, ``uint64``): a uniform one from the OS's secure source,
    and the difference (numpy's ``uint64`` arithmetic wraps modulo 2**64).

    >>> a, _ = split(np.zeros(4, dtype=np.uint64))
    >>> a.dtype.name, a.shape
    ('uint64', (4,))
    """
    if values.dtype != np.uint64:
        raise TypeError("shares are uint64: values are taken modulo 2**64")
    uniform = np.frombuffer(os.urandom(values.size * 8), dtype=np.uint64).reshape(values.shape)
    return uniform, values - uniform


def combine(first: Shares, second: Shares) -> Shares:
    """The shared values (or sums) from both shares.

    >>> a, b = split(np.array([2**63 + 5], dtype=np.uint64))
    >>> int(combine(a, b)[0]) == 2**63 + 5
    True
    """
    return first + second
