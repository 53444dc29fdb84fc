"""Does a signed combination of cohorts hold between 1 and d units? Decided exactly from power sums.

Let ``D`` be the signed multiset of a combination (``N - A`` for a pair, ``N - A - B`` or ``N - A + B``
for a union or a complement): elements counted ``+`` on one side (mass ``a``) and ``-`` on the other
(mass ``b``); the difference of the unit counts gives ``delta = a - b`` exactly. Its power sums
``p_1..p_m`` are the same combination of the cohorts' sketches. With ``P(t) = prod(1 - x t)`` over the
``+`` side and ``Q(t)`` over the ``-`` side, Newton's identities give the power series
``E(t) = P(t) / Q(t) = exp(-sum(p_j t**j / j))`` up to ``t**m``. So ``|D| = a + b <= d`` if and only if
some ``Q`` of degree ``b`` with ``Q(0) = 1`` makes ``Q E`` a polynomial of degree ``a`` up to ``t**m``:
a linear system over GF(p). Multiplying ``P`` and ``Q`` by the same factor keeps their ratio, so one
system suffices, the one with the largest ``b`` (``a + b <= d``, ``a - b = delta``).

- **No false negative.** If ``|D| <= d`` the true ``Q`` solves the system, whatever the elements. (Two
  units that share a field element can cancel; see ``sketch`` for when that can happen.)
- **False positives.** With ``m = d + 2`` the system has at least two more equations than unknowns.
  A combination of more than ``d`` units satisfies them only if a nonzero polynomial in its (keyed,
  pseudo-random) elements vanishes: by Schwartz-Zippel, probability below ``m**2 / p`` per equation left
  over, about ``2**-48`` per comparison at ``m = 11`` (it never happened in the property tests).

Most comparisons are between unrelated cohorts, so the systems are solved for many candidates at once
(numpy, no pivoting); a candidate whose pivot is zero (which is what a small difference usually looks
like) is decided again by the exact scalar elimination with pivoting.
"""

from __future__ import annotations

import functools

import numpy as np

from policies.cohorts.sketch import P


def series(sums: np.ndarray) -> np.ndarray:
    """``E_0..E_m`` of ``exp(-sum(p_j t**j / j))`` for each row of power sums ``(K, m)``; ``(K, m+1)``.

    >>> series(np.array([[5, 13]])).tolist()  # {2, 3}: (1 - 2t)(1 - 3t) = 1 - 5t + 6t**2
    [[1, 2147483642, 6]]
    """
    sums = np.asarray(sums, dtype=np.int64) % P
    count, m = sums.shape
    out = np.zeros((count, m + 1), dtype=np.int64)
    out[:, 0] = 1
    for n in range(1, m + 1):
        # sum_{i=1..n} p_i E_{n-i}: each product reduced below p, then at most m of them summed.
        acc = (sums[:, :n] * out[:, n - 1 :: -1] % P).sum(axis=1) % P
        out[:, n] = (P - acc) * pow(n, P - 2, P) % P
    return out


def _shape(delta: int, d: int) -> tuple[int, int]:
    """The (a, b) of the one system to solve: largest ``b`` with ``a - b = delta``, ``a + b <= d``."""
    b = (d - delta) // 2
    return b + delta, b


def _system(e: list[int], a: int, b: int, m: int) -> list[list[int]]:
    """Rows ``[E_{n-1} .. E_{n-b} | -E_n]`` for ``n = a+1 .. m``."""
    rows = []
    for n in range(a + 1, m + 1):
        row = [e[n - i] if n - i >= 0 else 0 for i in range(1, b + 1)]
        rows.append([*row, (P - e[n]) % P])
    return rows


def consistent(rows: list[list[int]], unknowns: int) -> bool:
    """Whether ``rows`` (augmented, over GF(p)) has a solution: exact elimination with pivoting.

    >>> consistent([[1, 2], [2, 4]], 1), consistent([[1, 2], [2, 5]], 1), consistent([[0, 0]], 0)
    (True, False, True)
    """
    matrix = [row[:] for row in rows]
    rank = 0
    for col in range(unknowns):
        pivot = next((r for r in range(rank, len(matrix)) if matrix[r][col] % P), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        inv = pow(matrix[rank][col], P - 2, P)
        matrix[rank] = [v * inv % P for v in matrix[rank]]
        for r in range(len(matrix)):
            if r != rank and matrix[r][col] % P:
                factor = matrix[r][col]
                matrix[r] = [(v - factor * w) % P for v, w in zip(matrix[r], matrix[rank], strict=True)]
        rank += 1
    return all(row[unknowns] % P == 0 for row in matrix[rank:])


def within(sums: list[int] | tuple[int, ...], delta: int, d: int) -> bool:
    """Scalar reference: can a signed multiset of at most ``d`` units (``delta`` more on the ``+``
    side) have these power sums? ``len(sums)`` must be at least ``d + 2``; identical sets count too
    (``delta = 0`` and all sums 0 is the empty difference).

    >>> within([1, 1, 1, 1], 1, 2)      # {1}: one unit more
    True
    >>> within([5, 13, 35, 97], 0, 2)   # {2, 3} on the + side: two units but delta would be 2
    False
    >>> within([5, 13, 35, 97], 2, 2)
    True
    """
    if abs(delta) > d:
        return False
    m = len(sums)
    e = series(np.array([sums]))[0].tolist()
    a, b = _shape(delta, d)
    return consistent(_system(e, a, b, m), b)


def within_many(sums: np.ndarray, delta: np.ndarray, d: int) -> np.ndarray:
    """:func:`within` for many candidates at once: ``sums`` ``(K, m)``, ``delta`` ``(K,)``; bools.

    Every candidate's system is solved in one elimination (``_solve_padded``), whatever its
    ``delta``: a job has a few dozen candidates spread over up to 2d + 1 shapes, where one
    elimination per shape cost more in numpy calls than in arithmetic.

    >>> within_many(np.array([[1, 1, 1, 1], [5, 13, 35, 97]]), np.array([1, 0]), 2).tolist()
    [True, False]
    """
    sums = np.asarray(sums, dtype=np.int64) % P
    delta = np.asarray(delta, dtype=np.int64)
    out = np.zeros(len(delta), dtype=bool)
    inside = np.flatnonzero(np.abs(delta) <= d)
    if not len(inside):
        return out
    out[inside] = _solve_padded(series(sums[inside]), delta[inside], d)
    return out


@functools.lru_cache(maxsize=64)
def _templates(shapes: tuple[tuple[int, int], ...], m: int) -> tuple[np.ndarray, int]:
    """Where each entry of the padded augmented matrix of each shape ``(a, b)`` comes from, as indices
    into a candidate's ``[E_0..E_m, -E_0..-E_m, 0, 1]``; and the padded number of unknowns ``B``.

    A system of ``b < B`` unknowns is put below ``B - b`` identity rows and right of as many identity
    columns (all 0 elsewhere, right-hand side 0): eliminating those columns changes nothing (their
    pivot is 1 and nothing is below it), and the system's own columns are then eliminated exactly as
    alone, so it is solvable exactly when it was; rows of zeros fill up to the tallest shape.
    """
    width = max(b for _, b in shapes)
    height = max(width - b + m - a for a, b in shapes)
    zero, one = 2 * m + 2, 2 * m + 3
    out = np.full((len(shapes), height, width + 1), zero, dtype=np.int64)
    for t, (a, b) in enumerate(shapes):
        pad = width - b
        for j in range(pad):
            out[t, j, j] = one
        for r, n in enumerate(range(a + 1, m + 1)):
            for i in range(1, b + 1):
                if n - i >= 0:
                    out[t, pad + r, pad + i - 1] = n - i
            out[t, pad + r, width] = m + 1 + n  # -E_n
    return out, width


def _solve_padded(e: np.ndarray, delta: np.ndarray, d: int) -> np.ndarray:
    """:func:`_solve_batch` for candidates of any ``delta`` at once (``_templates``); a zero pivot is
    decided again exactly, at the candidate's own shape."""
    count, m = len(e), e.shape[1] - 1
    if not count:
        return np.zeros(0, dtype=bool)
    values = np.unique(delta).tolist()
    shapes = tuple(_shape(int(v), d) for v in values)
    templates, width = _templates(shapes, m)
    source = np.concatenate(
        [e, (P - e) % P, np.zeros((count, 1), dtype=np.int64), np.ones((count, 1), dtype=np.int64)], axis=1
    )
    which = np.searchsorted(np.array(values, dtype=np.int64), delta)
    aug = source[np.arange(count)[:, None, None], templates[which]]
    singular = _eliminate(aug, width)
    result: np.ndarray = ~np.any(aug[:, width:, width] != 0, axis=1)
    for candidate in np.nonzero(singular)[0]:
        a, b = shapes[int(which[candidate])]
        result[candidate] = consistent(_system(e[candidate].tolist(), a, b, m), b)
    return result


def _solve_batch(e: np.ndarray, a: int, b: int, m: int) -> np.ndarray:
    """The systems of shape (a, b) for each row of ``e``; zero pivots are decided again exactly.

    Elimination by multiplication only (``row = row * pivot - factor * pivot_row``): scaling a row by a
    nonzero pivot keeps its solutions, and no inverse is needed, so every step is one array operation.
    """
    count = len(e)
    height = m - a
    # Row r is equation n = a + 1 + r: columns E_{n-1} .. E_{n-b} (0 below E_0), then -E_n.
    n = np.arange(a + 1, m + 1)[:, None]
    index = np.concatenate([n - np.arange(1, b + 1)[None, :], n], axis=1)
    aug = np.where(index >= 0, e[:, np.maximum(index, 0)], 0)
    aug[:, :, b] = (P - aug[:, :, b]) % P
    assert aug.shape == (count, height, b + 1)
    singular = _eliminate(aug, b)
    result: np.ndarray = ~np.any(aug[:, b:, b] != 0, axis=1)
    for candidate in np.nonzero(singular)[0]:
        result[candidate] = consistent(_system(e[candidate].tolist(), a, b, m), b)
    return result


def _eliminate(aug: np.ndarray, width: int) -> np.ndarray:
    """Forward elimination of each system in ``aug`` (systems × rows × columns) over its first ``width``
    columns, in place, by multiplication only (``row = row * pivot - factor * pivot_row``); returns which
    systems met a zero pivot (decided again exactly by the callers)."""
    singular = np.zeros(len(aug), dtype=bool)
    for col in range(width):
        pivot = aug[:, col, col]
        singular |= pivot == 0
        below = aug[:, col + 1 :, :]
        # Both products stay below 2**62 and their difference within int64.
        aug[:, col + 1 :, :] = (
            below * pivot[:, None, None] - below[:, :, col : col + 1] * aug[:, col : col + 1, :]
        ) % P
    return singular
