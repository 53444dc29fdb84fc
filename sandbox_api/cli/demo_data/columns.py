"""Small vectorised helpers that build Arrow columns without Python loops, and national IDs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sandbox_api.cli.demo_data.vocabulary import CHECK_CHARS, ID_WEIGHTS

# ---------------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------------


def ascii_digits(values: np.ndarray, width: int) -> np.ndarray:
    """The decimal digits of non-negative integers as an (n, width) matrix of ASCII codes."""
    out = np.empty((values.shape[0], width), dtype=np.uint8)
    rest = values.astype(np.int64, copy=True)
    for position in range(width - 1, -1, -1):
        out[:, position] = 48 + rest % 10
        rest //= 10
    return out


def fixed_width_strings(matrix: np.ndarray) -> pa.StringArray:
    """An (n, width) matrix of ASCII codes as an Arrow string array, one row per string, no copies."""
    rows, width = matrix.shape
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix).tobytes()
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.StringArray:
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    matrix = np.concatenate(
        [np.broadcast_to(head, (numbers.shape[0], head.size)), ascii_digits(numbers, width)], axis=1
    )
    return fixed_width_strings(matrix)


def labels(vocabulary: Sequence[str], codes: np.ndarray) -> pa.Array:
    """Plain (not dictionary-encoded) strings, so the Parquet schema says VARCHAR and nothing else."""
    return pc.take(pa.array(list(vocabulary), type=pa.string()), pa.array(codes.astype(np.int32)))


def weights(shares: Sequence[float]) -> np.ndarray:
    array = np.asarray(shares, dtype=np.float64)
    return np.asarray(array / array.sum(), dtype=np.float64)


def as_frame(columns: Mapping[str, pa.Array]) -> pd.DataFrame:
    # Arrow-backed dtypes keep DATE as a date and strings as strings through the Parquet round trip.
    frame: pd.DataFrame = pa.table(dict(columns)).to_pandas(types_mapper=pd.ArrowDtype)
    return frame


# ---------------------------------------------------------------------------------------------------
# National IDs
# ---------------------------------------------------------------------------------------------------


def national_id_check(digits: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters (as ASCII codes) for rows of 17 digit values."""
    return np.asarray(CHECK_CHARS[(digits.astype(np.int64) @ ID_WEIGHTS) % 11], dtype=np.uint8)


def national_id_is_valid(national_id: str) -> bool:
    """Whether an 18-character national ID carries the right ISO 7064 MOD 11-2 check character.

    >>> national_id_is_valid("11010519491231002X")
    True
    >>> national_id_is_valid("110105194912310021")
    False
    """
    if len(national_id) != 18 or not national_id[:17].isdigit():
        return False
    digits = np.frombuffer(national_id[:17].encode("ascii"), dtype=np.uint8) - 48
    return bool(national_id_check(digits[np.newaxis, :])[0] == ord(national_id[17]))
