"""Power-sum sketches of unit sets over GF(p), p = 2**31 - 1: fixed size, exact for small differences.

A cohort (the set of privacy units behind one released cell) is kept as its unit count ``n`` and the
first ``m`` power sums of its elements, ``s_j = sum(x**j for x in cohort) mod p`` for ``j = 1..m``,
where each unit is first mapped to a keyed field element ``x`` in ``[1, p-1]``. This is the
characteristic-polynomial / power-sum sketch of set reconciliation (Minsky, Trachtenberg and Zippel,
"Set reconciliation with nearly optimal communication complexity", IEEE Trans. Inf. Theory 49(9),
2003; the odd-power-sum variant over GF(2**b) is PinSketch: Dodis, Ostrovsky, Reyzin and Smith,
"Fuzzy extractors", SIAM J. Comput. 38(1), 2008). Why this and not the alternatives (measured, see
``benchmarks/bench_ledger.py``):

- sorted keyed 64-bit hashes are exact but cost 8 bytes per unit per cell (a cell of 900,000 units is
  7 MB, and a 10,000-cell ledger cannot be read in 20 ms);
- an invertible Bloom lookup table (Goodrich and Mitzenmacher, "Invertible Bloom lookup tables",
  Allerton 2011; Eppstein, Goodrich, Uyeda and Varghese, "What's the difference?", SIGCOMM 2011) has a
  fixed size too, but a small difference fails to decode with a probability that only grows the table
  can shrink (two difference elements sharing all their cells), and such a failure reads as "differs
  by a lot": a false negative, which the ledger must not have;
- power sums are *linear*: the sketch of a signed combination of cells (``N - A``, ``N - A - B``,
  ``N - A + B``) is the same combination of their sketches, so unions and complements of earlier cells
  cost an addition, and a difference of at most ``m - 2`` units is *always* recognised (``difference``).

Size: 4 bytes of count, 4 bytes per power sum and 2 per prefilter bucket (``CohortSketch``); with
``m = k + 1`` and 16 buckets that is ``4 * (k + 2) + 33`` bytes per cohort (81 bytes at k = 10),
whatever the cohort's size.

Element map: integer units in ``[0, p-1)`` go through a keyed affine bijection of ``Z/(p-1)`` (no two
units share an element, so no difference can cancel out); any other unit (text, large integers) is
first hashed to 64 bits with SipHash-2-4 keyed by the ledger key (pandas' ``hash_array``), where two
units share an element with probability about ``2**-31`` per pair. An element is never 0: a zero would
add nothing to any power sum and its unit would be invisible.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from policies.errors import OutputInvalid

P = 2**31 - 1  #: the field's prime (a Mersenne prime: products of two elements fit in 62 bits)
BUCKETS = 16  #: keyed buckets per cohort for the ledger's prefilter
_ORDER = P - 1  #: elements are 1 + (something mod P - 1), never 0
_FORMAT_2 = 0x80  #: the high bit of a sketch's first byte: the format with least elements
_MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class ElementKey:
    """The keyed map from units to field elements: ``x = 1 + (a * u + b) mod (p - 1)`` and a SipHash
    key for units that are not small integers. Build it with :func:`element_key` from the ledger key."""

    a: int
    b: int
    siphash_key: str


def element_key(secret: bytes) -> ElementKey:
    """The element map of a ledger key (32 bytes from ``crypto.pseudonym.derive_key``).

    ``a`` is made coprime with ``p - 1`` so that the affine map is a bijection.

    >>> key = element_key(bytes(range(32)))
    >>> math.gcd(key.a, P - 1), 0 <= key.b < P - 1, len(key.siphash_key)
    (1, True, 16)
    """
    if len(secret) < _MIN_KEY_BYTES * 2:
        raise OutputInvalid(f"a ledger key needs at least {_MIN_KEY_BYTES * 2} bytes, got {len(secret)}")
    a = int.from_bytes(secret[:8], "big") % _ORDER
    while a == 0 or math.gcd(a, _ORDER) != 1:
        a = (a + 1) % _ORDER
    b = int.from_bytes(secret[8:16], "big") % _ORDER
    # hash_array takes its key as 16 characters; hex of 8 secret bytes keeps it printable and 64-bit.
    return ElementKey(a=a, b=b, siphash_key=secret[16:24].hex())


def elements(units: np.ndarray, key: ElementKey) -> np.ndarray:
    """Field elements (int64 in ``[1, p-1]``) of an array of unit values, one per value.

    >>> key = element_key(bytes(32))
    >>> xs = elements(np.array([0, 1, 2]), key)
    >>> bool((xs >= 1).all() and (xs < P).all()), len(set(xs.tolist()))
    (True, 3)
    >>> bool(elements(np.array(["P0042"], dtype=object), key)[0] >= 1)
    True
    """
    values = np.asarray(units)
    if values.dtype.kind in "iu":
        # Decided per value, never per batch: a unit must map to the same element in every cohort.
        inside = (values >= 0) & (values < _ORDER)
        small = np.where(inside, values, 0).astype(np.int64)
        if not inside.all():
            small[~inside] = _hashed(values[~inside], key)
    else:
        small = _hashed(values, key)
    # a < 2**31 and small < 2**31: the product fits in int64.
    return (small * key.a + key.b) % _ORDER + 1


def _hashed(values: np.ndarray, key: ElementKey) -> np.ndarray:
    digest = pd.util.hash_array(values.astype(object), hash_key=key.siphash_key, categorize=False)
    return (digest % np.uint64(_ORDER)).astype(np.int64)


def power_sums(xs: np.ndarray, offsets: np.ndarray, m: int) -> np.ndarray:
    """The first ``m`` power sums mod p of consecutive segments of ``xs``; shape ``(segments, m)``.

    ``offsets`` are the start of each segment (Arrow list offsets without the last one); an empty
    segment sums to 0.

    >>> power_sums(np.array([2, 3, 5]), np.array([0, 2]), 3).tolist()
    [[5, 13, 35], [5, 25, 125]]
    """
    segments = len(offsets)
    out = np.zeros((segments, m), dtype=np.int64)
    if not segments or not len(xs):
        return out
    starts = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(np.append(starts, len(xs)))
    nonempty = lengths > 0
    starts_nonempty = starts[nonempty]
    x = xs.astype(np.int64)
    y = x.copy()
    for j in range(m):
        # Each term is below 2**31 and a segment has fewer than 2**32 of them: no int64 overflow.
        out[nonempty, j] = np.add.reduceat(y, starts_nonempty) % P
        if j + 1 < m:
            y *= x
            y %= P
    return out


@dataclass(frozen=True)
class SketchRequest:
    """What a job's sandbox needs to sketch its cohorts: the lineage's element secret (32 bytes, never
    stored with the sketches), how many power sums to keep (``ledger.sums_for(min_units)``) and how
    many least elements (``ledger.least_for(min_units)``; 0 keeps none, the first format)."""

    secret: bytes = field(repr=False)
    power_sums: int
    least: int = 0


@dataclass(frozen=True)
class CohortSketch:
    """A cohort: how many units, the power sums ``s_1..s_m`` of their elements (mod p), how many of
    its units fall in each of ``BUCKETS`` keyed buckets (mod 2**16), and its ``least`` elements.

    The bucket counts are a cheap filter, not part of the decision: a combination of at most ``d``
    units changes the buckets by at most ``d`` in total, so a candidate whose bucket counts differ by
    more is dismissed without solving anything (most candidates of a large ledger). Kept modulo
    2**16: a true difference of at most ``d`` is still read exactly as a signed 16-bit number.

    ``least`` (format 2) holds the cohort's smallest keyed elements, ascending: the keys by which the
    ledger finds, among all earlier cohorts, the parts a new cohort could be the union of
    (``ledger``). They are keyed elements, not identifiers: only the holder of the domain's keyring,
    which decrypts the data itself, could tell whose they are.
    """

    units: int
    sums: tuple[int, ...]
    buckets: tuple[int, ...] = ()
    least: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        """Format 1 (no ``least``): bucket count (1 byte), ``units`` (4), each sum (4), each bucket (2),
        big-endian. Format 2: the first byte's high bit set, then the number of least elements (1),
        and after the buckets each least element (4).

        >>> CohortSketch.from_bytes(CohortSketch(12, (1, 2, 3), (4, 5)).to_bytes())
        CohortSketch(units=12, sums=(1, 2, 3), buckets=(4, 5), least=())
        >>> CohortSketch.from_bytes(CohortSketch(12, (1, 2, 3), (4, 5), (7, 9)).to_bytes())
        CohortSketch(units=12, sums=(1, 2, 3), buckets=(4, 5), least=(7, 9))
        """
        marks = struct.pack(f">{len(self.buckets)}H", *(b % 2**16 for b in self.buckets))
        if not self.least:
            head = struct.pack(f">BI{len(self.sums)}I", len(self.buckets), self.units, *self.sums)
            return head + marks
        head = struct.pack(
            f">BBI{len(self.sums)}I", _FORMAT_2 | len(self.buckets), len(self.least), self.units, *self.sums
        )
        return head + marks + struct.pack(f">{len(self.least)}I", *self.least)

    @classmethod
    def from_bytes(cls, blob: bytes) -> CohortSketch:
        first = blob[0] if blob else 0
        nbuckets, nleast, start = first & ~_FORMAT_2, 0, 1
        if first & _FORMAT_2:
            nleast, start = (blob[1] if len(blob) > 1 else 0), 2
        body = len(blob) - start - 4 - 2 * nbuckets - 4 * nleast
        if len(blob) < start + 8 or body < 0 or body % 4:
            raise OutputInvalid(f"a cohort sketch of {len(blob)} bytes does not have the sketch layout")
        units, *sums = struct.unpack_from(f">I{body // 4}I", blob, start)
        if any(v >= P for v in sums):
            raise OutputInvalid("a cohort sketch holds a power sum outside the field")
        at = start + 4 + body
        buckets = struct.unpack_from(f">{nbuckets}H", blob, at)
        least = struct.unpack_from(f">{nleast}I", blob, at + 2 * nbuckets)
        return cls(units=units, sums=tuple(sums), buckets=tuple(buckets), least=tuple(least))


def least_elements(xs: np.ndarray, offsets: np.ndarray, h: int) -> np.ndarray:
    """The ``h`` smallest elements of each segment, ascending, 0-padded; shape ``(segments, h)``.

    Without sorting everything: the minimum of each of ``4h`` keyed bins per segment (one unbuffered
    ``minimum.at`` pass) gives a threshold, the ``h``-th smallest bin minimum, below which the ``h``
    smallest elements must lie; only those few candidates are sorted.

    >>> least_elements(np.array([9, 4, 7, 1, 5, 8]), np.array([0, 4]), 2).tolist()
    [[1, 4], [5, 8]]
    >>> least_elements(np.array([3]), np.array([0, 1]), 2).tolist()
    [[3, 0], [0, 0]]
    """
    segments = len(offsets)
    out = np.zeros((segments, h), dtype=np.int64)
    if not segments or not len(xs) or h < 1:
        return out
    x = np.asarray(xs, dtype=np.int64)
    starts = np.asarray(offsets, dtype=np.int64)
    parents = np.repeat(np.arange(segments), np.diff(np.append(starts, len(x))))
    bins = 4 * h
    minima = np.full(segments * bins, P, dtype=np.int64)
    np.minimum.at(minima, parents * bins + (x * 0x9E3779B1 % P) % bins, x)
    threshold = np.sort(minima.reshape(segments, bins), axis=1)[:, h - 1]  # P where fewer bins are filled
    keep = x <= threshold[parents]
    order = np.lexsort((x[keep], parents[keep]))
    px, pp = x[keep][order], parents[keep][order]
    rank = np.arange(len(pp)) - np.searchsorted(pp, pp, side="left")
    take = rank < h
    out[pp[take], rank[take]] = px[take]
    return out


def bucket_counts(xs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """How many elements of each segment fall in each of ``BUCKETS`` buckets; ``(segments, BUCKETS)``.

    The bucket is taken from the element's high bits (the power sums use the whole element).

    >>> bucket_counts(np.array([1, 2**30, 2**30 + 1]), np.array([0, 1])).sum(axis=1).tolist()
    [1, 2]
    """
    segments = len(offsets)
    starts = np.asarray(offsets, dtype=np.int64)
    parents = np.repeat(np.arange(segments), np.diff(np.append(starts, len(xs)))) if segments else starts
    bucket = (np.asarray(xs, dtype=np.int64) >> 27) % BUCKETS
    flat = np.bincount(parents * BUCKETS + bucket, minlength=segments * BUCKETS)
    return flat.reshape(segments, BUCKETS)


def sketch_of(units: np.ndarray, key: ElementKey, m: int, least: int = 0) -> CohortSketch:
    """The sketch of one set of unit values (duplicates are the caller's to remove), with its
    ``least`` smallest elements (none by default).

    >>> key = element_key(bytes(32))
    >>> s = sketch_of(np.array([7, 8, 9]), key, 4)
    >>> s.units, len(s.sums), s == sketch_of(np.array([9, 7, 8]), key, 4)
    (3, 4, True)
    """
    xs = elements(units, key)
    row = power_sums(xs, np.array([0]), m)[0]
    buckets = bucket_counts(xs, np.array([0]))[0]
    smallest = least_elements(xs, np.array([0]), least)[0]
    return CohortSketch(
        len(units),
        tuple(int(v) for v in row),
        tuple(int(b) for b in buckets),
        tuple(int(v) for v in smallest if v),
    )
