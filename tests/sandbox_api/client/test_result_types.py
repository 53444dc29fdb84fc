"""Result types survive the trip: integer sums are JSON numbers, a masked DATE is a date, and the
Python client's DataFrame has the matching dtypes.

Before, the engine's exact integer sums (DECIMAL(38,0)) came back as strings ("7") and a DATE
generalised to its year as a timestamp string ("1965-01-01T00:00:00.000"); these tests failed then.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from sandbox_api.client.api_client import SandboxClient
from tests.sandbox_api.api_helpers import SCOPE, World, citizens_table, world
from tests.sandbox_api.python_job_helpers import result_of, run_job
from tests.sandbox_api.release_helpers import HOUSEHOLDS_SCOPE, ensure_households, households_table

CHILDREN = "SELECT district, SUM(children) AS children, COUNT(*) AS n FROM households GROUP BY district"
BIRTH_YEARS = "SELECT birth_date, COUNT(*) AS n FROM citizens GROUP BY birth_date"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        ensure_households(deployment)
        yield deployment


def released(api: World, scope: str, sql: str) -> dict[str, Any]:
    job = run_job(api, {"scope": scope, "sql": sql})
    assert job["state"] == "released", job["reason"]
    return result_of(api, job["job_id"])


def test_integer_sums_come_back_as_json_numbers(api: World) -> None:
    result = released(api, HOUSEHOLDS_SCOPE, CHILDREN)
    truth = households_table().to_pandas().groupby("district")["children"].sum()
    sums = {row[0]: row[1] for row in result["rows"]}
    assert sums == {d: int(v) for d, v in truth.items()}
    assert all(type(v) is int for v in sums.values())
    assert result["column_types"] == ["string", "integer", "integer"]


def test_a_date_masked_to_its_year_comes_back_as_a_date(api: World) -> None:
    result = released(api, SCOPE, BIRTH_YEARS)
    years = [row[0] for row in result["rows"]]
    assert years
    assert all(isinstance(y, str) and len(y) == 10 and y.endswith("-01-01") for y in years)
    truth = citizens_table().to_pandas()["birth_date"].map(lambda d: d.year).value_counts()
    got = {int(y[:4]): n for y, n in ([row[0], row[1]] for row in result["rows"])}
    assert got == {int(year): int(n) for year, n in truth.items() if n >= 10}
    assert result["column_types"] == ["date", "integer"]


def _client(api: World, who: str) -> SandboxClient:
    """The Python client, its requests served by this module's gateway in-process."""

    def forward(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = api.client.request(
            request.method, request.url.raw_path.decode(), headers=dict(request.headers)
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return SandboxClient("http://gateway.test", api.tokens[who], transport=httpx.MockTransport(forward))


def test_the_client_dataframe_keeps_the_types(api: World) -> None:
    children = run_job(api, {"scope": HOUSEHOLDS_SCOPE, "sql": CHILDREN})["job_id"]
    years = run_job(api, {"scope": SCOPE, "sql": BIRTH_YEARS})["job_id"]
    with _client(api, "alice") as client:
        sums = client.get_result(children).table
        dates = client.get_result(years).table
    assert pd.api.types.is_integer_dtype(sums["children"].dtype)
    assert pd.api.types.is_integer_dtype(sums["n"].dtype)
    assert pd.api.types.is_datetime64_any_dtype(dates["birth_date"].dtype)
    assert set(dates["birth_date"].dt.month) == {1}
    assert pd.api.types.is_integer_dtype(dates["n"].dtype)
