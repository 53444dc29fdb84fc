"""A released result as the client hands it over: the table as a DataFrame whose dtypes follow the
gateway's column types, its suppression report and its receipt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox_api.schemas import ReleaseReportOut, ResultOut

if TYPE_CHECKING:
    # pandas is imported where tables are built, not here: a command line that only lists jobs should
    # not wait a second for it (``sandbox_api/cli`` imports the client).
    import pandas as pd


@dataclass(frozen=True)
class Result:
    """A released result: the table, its suppression report and, when the gateway signed it, a receipt."""

    job_id: str
    table: pd.DataFrame
    report: ReleaseReportOut
    receipt: Mapping[str, Any] | None
    raw: ResultOut = field(repr=False)


# The pandas dtype of each released column type (``ResultOut.column_types``): nullable integers and
# booleans, because a remainder row or an empty cell may be NULL in any column.
_DTYPES: Mapping[str, Any] = {
    "integer": "Int64",
    "float": "float64",
    "boolean": "boolean",
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns]",
    "string": "object",
}


def typed_frame(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], types: Sequence[str] | None
) -> pd.DataFrame:
    """A released table as a DataFrame whose dtypes follow the gateway's column types.

    >>> frame = typed_frame(["year", "n", "mean"], [["1965-01-01", 12, 3.5], [None, 20, None]],
    ...                     ["date", "integer", "float"])
    >>> [str(t) for t in frame.dtypes]
    ['datetime64[ns]', 'Int64', 'float64']
    >>> int(frame["year"].dt.year.iloc[0])
    1965
    """
    import pandas as pd

    frame = pd.DataFrame.from_records([list(row) for row in rows], columns=list(columns))
    if types is None or len(types) != len(columns):  # a result from before types were recorded
        return frame
    for index, kind in enumerate(types):
        dtype = _DTYPES.get(kind)
        if dtype is None or dtype == "object":
            continue
        values = frame.iloc[:, index]
        if kind in {"date", "timestamp"}:
            converted = pd.to_datetime(values, format="ISO8601").astype(dtype)
        else:
            converted = values.astype(dtype)
        frame.isetitem(index, converted.array)  # by position: two columns may share a name
    return frame
