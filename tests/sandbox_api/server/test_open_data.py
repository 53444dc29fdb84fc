"""Open data: a released result is proposed by its operator, published by a second person, read by
anyone without a token with a receipt that checks offline, and withdrawn with an audited reason."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox_api.client.api_client import SandboxClient
from sandbox_api.receipt_check import verify_receipt
from tests.sandbox_api.api_helpers import SCOPE, World, world
from tests.sandbox_api.auditing_helpers import release, result_of, trusted_keys


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("open-data")) as deployment:
        yield deployment


MOCK = "mock"


def propose(api: World, job_id: str, *, who: str = "alice", title: str = "Visits by district") -> Any:
    return api.client.post(
        "/v1/publications",
        headers=api.h(who),
        json={"job_id": job_id, "title": title, "description": "Counts per district."},
    )


def proposed(api: World, job_id: str) -> str:
    answer = propose(api, job_id)
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "proposed"
    return str(answer.json()["publication_id"])


def decide(api: World, publication: str, action: str, *, who: str = "olga", reason: str = "") -> Any:
    return api.client.post(
        f"/v1/publications/{publication}/{action}", headers=api.h(who), json={"reason": reason}
    )


def published(api: World, sql: str) -> tuple[str, str]:
    job = release(api, sql)
    publication = proposed(api, job)
    answer = decide(api, publication, "publish", reason="aggregate of a released study")
    assert answer.status_code == 200, answer.text
    return job, publication


def test_a_published_table_is_the_released_table_and_its_receipt_checks_offline(api: World) -> None:
    job, publication = published(api, "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district")
    released = result_of(api, job)

    listed = api.client.get("/v1/open-data")  # no token
    assert listed.status_code == 200, listed.text
    entry = next(e for e in listed.json()["entries"] if e["publication_id"] == publication)
    assert entry["title"] == "Visits by district"
    assert entry["purpose"]  # the scope's purpose, in words
    assert entry["row_count"] == released["row_count"]

    table = api.client.get(f"/v1/open-data/{publication}").json()
    assert (table["columns"], table["rows"]) == (released["columns"], released["rows"])
    report = verify_receipt(table["receipt"], trusted_keys(api), result=table)
    assert report.result_checked
    assert report.job_id == job

    text = api.client.get(f"/v1/open-data/{publication}/data.csv")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/csv")
    parsed = list(csv.reader(io.StringIO(text.text)))
    assert parsed[0] == released["columns"]
    assert [[str(v) for v in row] for row in released["rows"]] == parsed[1:]


def test_a_proposal_is_not_public_until_a_second_person_publishes_it(api: World) -> None:
    job = release(api, "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex")
    publication = proposed(api, job)
    assert api.client.get(f"/v1/open-data/{publication}").status_code == 404
    assert publication not in {e["publication_id"] for e in api.client.get("/v1/open-data").json()["entries"]}

    # Operators cannot decide at all; an officer decides once.
    assert decide(api, publication, "publish", who="alice").status_code == 403
    assert decide(api, publication, "publish").status_code == 200
    assert decide(api, publication, "refuse", who="oscar", reason="late").status_code == 409
    assert api.client.get(f"/v1/open-data/{publication}").status_code == 200


def test_only_the_owner_proposes_only_released_real_results_once(api: World) -> None:
    job = release(api, "SELECT district, SUM(income) AS total FROM citizens GROUP BY district")
    # bob's proposal for alice's job: that job does not exist for him.
    assert propose(api, job, who="bob").status_code == 404
    assert propose(api, "0" * 32).status_code == 404
    assert propose(api, job, title=" ").status_code == 422
    first = proposed(api, job)
    again = propose(api, job)
    assert again.status_code == 409
    assert first in again.json()["detail"]

    mock = api.client.post(
        "/v1/jobs",
        headers=api.h("alice"),
        json={
            "scope": SCOPE,
            "sql": "SELECT district, COUNT(*) AS n FROM citizens GROUP BY 1",
            "mode": "mock",
        },
    )
    assert mock.status_code == 202, mock.text
    assert api.wait(mock.json()["job_id"])["state"] == "released"
    refused = propose(api, mock.json()["job_id"])
    assert refused.status_code == 409
    assert "mock" in refused.json()["detail"]


def test_a_refusal_needs_a_reason_and_the_proposer_sees_it(api: World) -> None:
    job = release(api, "SELECT district, AVG(income) AS mean_income FROM citizens GROUP BY district")
    publication = proposed(api, job)
    assert decide(api, publication, "refuse").status_code == 422
    reason = "incomes by district are not for the public"
    assert decide(api, publication, "refuse", reason=reason).status_code == 200
    seen = api.client.get(f"/v1/publications/{publication}", headers=api.h("alice")).json()
    assert seen["state"] == "refused"
    assert seen["decision_reason"] == reason
    assert seen["decided_by"] == "olga"
    # Refused: the job may be proposed again (with a better title, say).
    assert propose(api, job).status_code == 201


def test_proposals_are_visible_to_their_proposer_and_to_overseers_only(api: World) -> None:
    job = release(api, "SELECT district, COUNT(*) AS people FROM citizens GROUP BY district")
    publication = proposed(api, job)
    assert api.client.get(f"/v1/publications/{publication}", headers=api.h("bob")).status_code == 404
    assert publication not in {
        p["publication_id"]
        for p in api.client.get("/v1/publications", headers=api.h("bob")).json()["publications"]
    }
    for overseer in ("olga", "audra", "admin"):
        answer = api.client.get("/v1/publications?state=proposed", headers=api.h(overseer))
        assert publication in {p["publication_id"] for p in answer.json()["publications"]}, overseer


def test_withdrawal_takes_a_table_out_of_the_catalog_with_an_audited_reason(api: World) -> None:
    _, publication = published(api, "SELECT district, COUNT(*) AS c FROM citizens GROUP BY district")
    assert decide(api, publication, "withdraw", who="alice", reason="x").status_code == 403
    assert decide(api, publication, "withdraw", who="admin").status_code == 422
    answer = decide(api, publication, "withdraw", who="admin", reason="a district boundary was wrong")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "withdrawn"

    gone = api.client.get(f"/v1/open-data/{publication}")
    assert gone.status_code == 404
    assert "withdrawn on" in gone.json()["detail"]
    assert api.client.get(f"/v1/open-data/{publication}/data.csv").status_code == 404
    assert publication not in {e["publication_id"] for e in api.client.get("/v1/open-data").json()["entries"]}
    assert decide(api, publication, "withdraw", who="admin", reason="again").status_code == 409

    events = [e for e in api.audit_events() if e["details"].get("publication") == publication]
    assert [e["event"] for e in events] == [
        "publication.proposed",
        "publication.published",
        "publication.withdrawn",
    ]
    assert [e["actor"] for e in events] == ["alice", "olga", "admin"]
    assert events[-1]["details"]["reason"] == "a district boundary was wrong"


def test_the_client_walks_the_whole_workflow(api: World) -> None:
    job = release(api, "SELECT district, COUNT(*) AS k FROM citizens GROUP BY district")

    def forward(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response = api.client.request(
            request.method,
            request.url.raw_path.decode(),
            headers=dict(request.headers),
            content=request.content,
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def client(who: str) -> SandboxClient:
        token = api.tokens[who] if who else ""
        return SandboxClient("http://gateway.test", token, transport=httpx.MockTransport(forward))

    with client("alice") as alice, client("olga") as olga, client("") as anyone:
        publication = alice.propose_publication(job, title="k by district").publication_id
        assert olga.publish(publication, reason="fine").state == "published"
        assert publication in {e.publication_id for e in anyone.open_data()}
        assert anyone.open_data_table(publication).rows == result_of(api, job)["rows"]
        assert anyone.open_data_csv(publication).splitlines()[0] == "district,k"


def test_the_console_shows_published_tables_to_visitors_who_are_not_signed_in(api: World) -> None:
    _, publication = published(api, "SELECT district, COUNT(*) AS visits FROM citizens GROUP BY district")
    page = api.client.get("/console/open-data")
    assert page.status_code == 200
    assert f"/console/open-data/{publication}" in page.text
    table = api.client.get(f"/console/open-data/{publication}", headers={"Accept-Language": "zh-CN"})
    assert table.status_code == 200
    assert "visits" in table.text
    assert "下载 CSV" in table.text
    assert f"/v1/open-data/{publication}/data.csv" in table.text
    assert api.client.get("/console/open-data/" + "0" * 32).status_code == 404
