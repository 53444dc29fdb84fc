"""Every route × every role: exactly the intended allow/deny, and every refusal is audited.

"Allowed" means the role gate let the request through (any answer but 401/403: dummy ids give 404, an
empty body 422). A new route without an entry here fails ``test_matrix_covers_every_route``.

The web console's pages are in ``CONSOLE``: signed in with each principal's token (a cookie session),
every page answers or refuses exactly as the API route it stands beside, and refusals are audited the
same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.sandbox_api.api_helpers import DOMAIN, World
from tests.sandbox_api.console_helpers import ConsoleSession, anonymous, sign_in

ALL = frozenset({"admin", "stu", "cleo", "dana", "olga", "alice", "chad", "audra"})
# dana administers DOMAIN: the principal routes let her in; the target is then checked (a missing one: 404).
MANAGERS = frozenset({"admin", "dana"})
P = "/v1/principals/matrix-none"
READERS = frozenset({"stu", "cleo", "olga", "admin", "audra", "alice"})  # not the output checker
SCOPE_READERS = frozenset({"olga", "admin", "audra", "alice"})
JOB_READERS = frozenset({"alice", "admin", "audra"})
D = f"/v1/datasets/{DOMAIN}/matrix-none"
J = "/v1/jobs/" + "0" * 32
R = "/v1/reviews/" + "0" * 32
CHECKERS = frozenset({"chad"})
S = "/v1/scopes/matrix-none/versions/" + "0" * 64
PUB = "/v1/publications/" + "0" * 32
OD = "/v1/open-data/" + "0" * 32
PUBLICATION_READERS = frozenset({"alice", "olga", "audra", "admin"})
OFFICERS = frozenset({"olga"})
A = "/v1/applications/matrix-none"
APPLICATION_READERS = frozenset({"alice", "olga", "admin", "audra"})

# (method, route path) -> (concrete path, JSON body or None, principals allowed)
MATRIX: dict[tuple[str, str], tuple[str, Any, frozenset[str]]] = {
    ("GET", "/v1/health"): ("/v1/health", None, ALL),
    ("GET", "/v1/whoami"): ("/v1/whoami", None, ALL),
    ("POST", "/v1/domains"): ("/v1/domains", {}, frozenset({"admin"})),
    ("GET", "/v1/domains"): ("/v1/domains", None, ALL),
    ("POST", "/v1/domains/{name}/keys/rotate"): (
        "/v1/domains/matrix-none/keys/rotate",
        None,
        frozenset({"admin"}),
    ),
    ("POST", "/v1/principals"): ("/v1/principals", {}, MANAGERS),
    ("GET", "/v1/principals"): ("/v1/principals", None, MANAGERS),
    ("POST", "/v1/principals/{name}/tokens"): (P + "/tokens", None, MANAGERS),
    ("GET", "/v1/principals/{name}/tokens"): (P + "/tokens", None, MANAGERS),
    ("DELETE", "/v1/principals/{name}/tokens"): (P + "/tokens", None, MANAGERS),
    ("DELETE", "/v1/principals/{name}/tokens/{token_id}"): (P + "/tokens/" + "0" * 12, None, MANAGERS),
    ("POST", "/v1/principals/{name}/disable"): (P + "/disable", None, MANAGERS),
    ("POST", "/v1/principals/{name}/enable"): (P + "/enable", None, MANAGERS),
    ("POST", "/v1/datasets"): ("/v1/datasets", {"domain": DOMAIN, "name": "matrix-ds"}, frozenset({"stu"})),
    ("GET", "/v1/datasets"): ("/v1/datasets", None, READERS),
    # cleo is a steward of another domain: the gate is the domain, not only the role.
    ("GET", "/v1/datasets/{domain}/{name}"): (D, None, READERS - {"cleo"}),
    ("POST", "/v1/datasets/{domain}/{name}/versions"): (D + "/versions", None, frozenset({"stu"})),
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/retire"): (
        D + "/versions/abc/retire",
        None,
        frozenset({"stu"}),
    ),
    # The catalog workflow: a second steward of the domain reviews; cleo stewards another domain.
    ("GET", "/v1/datasets/{domain}/{name}/versions/{version}"): (
        D + "/versions/abc",
        None,
        READERS - {"cleo"},
    ),
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/publish"): (
        D + "/versions/abc/publish",
        {},
        frozenset({"stu"}),
    ),
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/return"): (
        D + "/versions/abc/return",
        {"reason": "matrix"},
        frozenset({"stu"}),
    ),
    ("POST", "/v1/scopes"): ("/v1/scopes", {}, frozenset({"olga"})),
    ("GET", "/v1/scopes"): ("/v1/scopes", None, SCOPE_READERS),
    ("GET", "/v1/scopes/{name}"): ("/v1/scopes/matrix-none", None, SCOPE_READERS),
    ("POST", "/v1/scopes/{name}/versions/{version_id}/approve"): (S + "/approve", {}, frozenset({"olga"})),
    ("POST", "/v1/scopes/{name}/versions/{version_id}/reject"): (S + "/reject", {}, frozenset({"olga"})),
    ("POST", "/v1/scopes/{name}/versions/{version_id}/revoke"): (S + "/revoke", {}, frozenset({"olga"})),
    ("POST", "/v1/applications"): ("/v1/applications", {}, frozenset({"alice"})),
    ("GET", "/v1/applications"): ("/v1/applications", None, APPLICATION_READERS),
    ("GET", "/v1/applications/{application_id}"): (A, None, APPLICATION_READERS),
    ("POST", "/v1/applications/{application_id}/draft"): (A + "/draft", {}, frozenset({"olga"})),
    ("POST", "/v1/applications/{application_id}/refuse"): (A + "/refuse", {}, frozenset({"olga"})),
    ("GET", "/v1/alerts"): ("/v1/alerts", None, frozenset({"audra", "admin"})),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): (
        "/v1/alerts/matrix-none/acknowledge",
        {},
        frozenset({"audra"}),
    ),
    ("POST", "/v1/jobs/check"): ("/v1/jobs/check", {}, frozenset({"alice"})),
    ("POST", "/v1/jobs"): ("/v1/jobs", {}, frozenset({"alice"})),
    ("GET", "/v1/jobs"): ("/v1/jobs", None, JOB_READERS),
    ("GET", "/v1/jobs/{job_id}"): (J, None, JOB_READERS),
    ("GET", "/v1/jobs/{job_id}/result"): (J + "/result", None, frozenset({"alice"})),
    ("POST", "/v1/jobs/{job_id}/cancel"): (J + "/cancel", None, frozenset({"alice", "admin"})),
    ("GET", "/v1/reviews"): ("/v1/reviews", None, CHECKERS),
    ("GET", "/v1/reviews/{job_id}"): (R, None, CHECKERS),
    ("POST", "/v1/reviews/{job_id}/release"): (R + "/release", {}, CHECKERS),
    ("POST", "/v1/reviews/{job_id}/deny"): (R + "/deny", {"reason": "matrix"}, CHECKERS),
    ("GET", "/v1/audit/events"): ("/v1/audit/events", None, frozenset({"audra"})),
    ("GET", "/v1/audit/export"): ("/v1/audit/export", None, frozenset({"audra"})),
    ("GET", "/v1/audit/head"): ("/v1/audit/head", None, frozenset({"audra"})),
    ("GET", "/v1/audit/bundle"): ("/v1/audit/bundle", None, frozenset({"audra"})),
    ("GET", "/v1/audit/checkpoints"): ("/v1/audit/checkpoints", None, frozenset({"audra"})),
    ("POST", "/v1/audit/checkpoints/{seq}/witness"): (
        "/v1/audit/checkpoints/0/witness",
        {},
        frozenset({"audra"}),
    ),
    ("POST", "/v1/witnesses"): ("/v1/witnesses", {}, frozenset({"admin"})),
    ("GET", "/v1/witnesses"): ("/v1/witnesses", None, frozenset({"audra", "admin"})),
    ("GET", "/v1/jobs/{job_id}/receipt"): (J + "/receipt", None, JOB_READERS),
    ("POST", "/v1/jobs/{job_id}/replay"): (J + "/replay", None, frozenset({"audra"})),
    ("GET", "/v1/keys/signing"): ("/v1/keys/signing", None, ALL),
    ("POST", "/v1/keys/signing/rotate"): ("/v1/keys/signing/rotate", None, frozenset({"admin"})),
    # Steward of the domain or admin; cleo stewards another domain.
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/shred"): (
        D + "/versions/abc/shred",
        {},
        frozenset({"stu", "admin"}),
    ),
    ("POST", "/v1/publications"): ("/v1/publications", {}, frozenset({"alice"})),
    ("GET", "/v1/publications"): ("/v1/publications", None, PUBLICATION_READERS),
    ("GET", "/v1/publications/{publication_id}"): (PUB, None, PUBLICATION_READERS),
    ("POST", "/v1/publications/{publication_id}/publish"): (PUB + "/publish", {}, OFFICERS),
    ("POST", "/v1/publications/{publication_id}/refuse"): (PUB + "/refuse", {}, OFFICERS),
    ("POST", "/v1/publications/{publication_id}/withdraw"): (
        PUB + "/withdraw",
        {},
        frozenset({"olga", "admin"}),
    ),
    # The public open-data catalog needs no token (PUBLIC).
    ("GET", "/v1/open-data"): ("/v1/open-data", None, ALL),
    ("GET", "/v1/open-data/{publication_id}"): ("/v1/open-data/" + "0" * 32, None, ALL),
    ("GET", "/v1/open-data/{publication_id}/data.csv"): (
        "/v1/open-data/" + "0" * 32 + "/data.csv",
        None,
        ALL,
    ),
    # Outside /v1 (OUTSIDE_V1): the probes need no token, the metrics are for admins and auditors.
    ("GET", "/livez"): ("/livez", None, ALL),
    ("GET", "/readyz"): ("/readyz", None, ALL),
    ("GET", "/metrics"): ("/metrics", None, frozenset({"admin", "audra"})),
}
C = "/console"
CJ = C + "/jobs/" + "0" * 32
CR = C + "/reviews/" + "0" * 32
CS = C + "/scopes/matrix-none/versions/" + "0" * 64
OFFICER = frozenset({"olga"})
OPERATOR = frozenset({"alice"})
AUDITOR = frozenset({"audra"})
# (method, route path) -> (concrete path, principals allowed); POSTs send only the CSRF token, so an
# allowed principal gets 422 (a missing field) or 404 (a dummy id), never 401 or 403.
CONSOLE: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("GET", C): (C, ALL),
    ("GET", C + "/sign-in"): (C + "/sign-in", ALL),
    ("POST", C + "/sign-in"): (C + "/sign-in", ALL),
    ("POST", C + "/sign-out"): (C + "/sign-out", ALL),
    # Sign-in by redirect to the single sign-on issuer (off in this deployment: 404 to everyone).
    ("GET", C + "/sign-in/sso"): (C + "/sign-in/sso", ALL),
    ("GET", C + "/sign-in/sso/callback"): (C + "/sign-in/sso/callback", ALL),
    ("POST", C + "/language"): (C + "/language", ALL),
    ("GET", C + "/home"): (C + "/home", ALL),
    ("GET", C + "/jobs"): (C + "/jobs", JOB_READERS),
    ("POST", C + "/jobs/check"): (C + "/jobs/check", OPERATOR),
    ("POST", C + "/jobs"): (C + "/jobs", OPERATOR),
    ("GET", C + "/jobs/{job_id}"): (CJ, JOB_READERS),
    ("GET", C + "/jobs/{job_id}/result.csv"): (CJ + "/result.csv", OPERATOR),
    ("GET", C + "/jobs/{job_id}/result.parquet"): (CJ + "/result.parquet", OPERATOR),
    ("POST", C + "/jobs/{job_id}/replay"): (CJ + "/replay", frozenset({"audra"})),
    ("GET", C + "/reviews"): (C + "/reviews", CHECKERS),
    ("GET", C + "/reviews/{job_id}"): (CR, CHECKERS),
    ("POST", C + "/reviews/{job_id}/release"): (CR + "/release", CHECKERS),
    ("POST", C + "/reviews/{job_id}/deny"): (CR + "/deny", CHECKERS),
    ("GET", C + "/scopes"): (C + "/scopes", SCOPE_READERS),
    ("POST", C + "/scopes/check"): (C + "/scopes/check", OFFICER),
    ("POST", C + "/scopes"): (C + "/scopes", OFFICER),
    ("POST", C + "/scopes/{name}/versions/{version_id}/approve"): (CS + "/approve", OFFICER),
    ("POST", C + "/scopes/{name}/versions/{version_id}/reject"): (CS + "/reject", OFFICER),
    ("POST", C + "/scopes/{name}/versions/{version_id}/revoke"): (CS + "/revoke", OFFICER),
    ("GET", C + "/datasets"): (C + "/datasets", READERS),
    # A steward of another domain (cleo) is refused by the domain gate, as on the API.
    ("POST", C + "/datasets/{domain}/{name}/versions/{version}/publish"): (
        f"{C}/datasets/{DOMAIN}/matrix-none/versions/abc/publish",
        frozenset({"stu"}),
    ),
    ("POST", C + "/datasets/{domain}/{name}/versions/{version}/return"): (
        f"{C}/datasets/{DOMAIN}/matrix-none/versions/abc/return",
        frozenset({"stu"}),
    ),
    ("POST", C + "/datasets/{domain}/{name}/versions/{version}/retire"): (
        f"{C}/datasets/{DOMAIN}/matrix-none/versions/abc/retire",
        frozenset({"stu"}),
    ),
    ("POST", C + "/datasets/{domain}/{name}/versions"): (
        f"{C}/datasets/{DOMAIN}/matrix-none/versions",
        frozenset({"stu"}),
    ),
    ("POST", C + "/datasets/{domain}/{name}/draft-manifest"): (
        f"{C}/datasets/{DOMAIN}/matrix-none/draft-manifest",
        frozenset({"stu"}),
    ),
    ("POST", C + "/datasets/{domain}/{name}/versions/{version}/shred"): (
        f"{C}/datasets/{DOMAIN}/matrix-none/versions/abc/shred",
        frozenset({"stu", "admin"}),
    ),
    ("GET", C + "/applications"): (C + "/applications", APPLICATION_READERS),
    ("POST", C + "/applications"): (C + "/applications", OPERATOR),
    ("POST", C + "/applications/{application_id}/draft"): (C + "/applications/matrix-none/draft", OFFICER),
    ("POST", C + "/applications/{application_id}/refuse"): (C + "/applications/matrix-none/refuse", OFFICER),
    ("GET", C + "/alerts"): (C + "/alerts", frozenset({"audra", "admin"})),
    ("POST", C + "/alerts/{alert_id}/acknowledge"): (
        C + "/alerts/matrix-none/acknowledge",
        frozenset({"audra"}),
    ),
    ("GET", C + "/open-data"): (C + "/open-data", ALL),
    ("GET", C + "/open-data/{publication_id}"): (C + "/open-data/" + "0" * 32, ALL),
    ("GET", C + "/audit"): (C + "/audit", frozenset({"audra"})),
    ("GET", C + "/audit/export"): (C + "/audit/export", frozenset({"audra"})),
    ("GET", C + "/admin"): (C + "/admin", MANAGERS),
    ("POST", C + "/admin/principals"): (C + "/admin/principals", MANAGERS),
    ("POST", C + "/admin/domains"): (C + "/admin/domains", frozenset({"admin"})),
    ("POST", C + "/admin/principals/{name}/tokens/revoke"): (
        C + "/admin/principals/matrix-none/tokens/revoke",
        MANAGERS,
    ),
    ("POST", C + "/admin/principals/{name}/tokens"): (
        C + "/admin/principals/matrix-none/tokens",
        MANAGERS,
    ),
    ("POST", C + "/admin/domains/{name}/rotate"): (
        C + "/admin/domains/matrix-none/rotate",
        frozenset({"admin"}),
    ),
}
# Pages a signed-out visitor may use (with the CSRF token of their anonymous session).
CONSOLE_OPEN = {
    ("GET", C + "/sign-in"),
    ("POST", C + "/sign-in"),
    ("POST", C + "/language"),
    # The public open-data catalog (published tables need no sign-in, as on the API).
    ("GET", C + "/open-data"),
    ("GET", C + "/open-data/{publication_id}"),
    ("GET", C + "/sign-in/sso"),
    ("GET", C + "/sign-in/sso/callback"),
}

# Public signing keys need no token: whoever holds a receipt must be able to verify it. Probes come from
# orchestrators, which hold no token.
PUBLIC = {
    ("GET", "/v1/health"),
    ("GET", "/v1/keys/signing"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/v1/open-data"),
    ("GET", "/v1/open-data/{publication_id}"),
    ("GET", "/v1/open-data/{publication_id}/data.csv"),
}
# The only routes outside the versioned API: probes and the scrape route, at the paths orchestrators and
# Prometheus look for (server/observability/health.py). Everything people call is under /v1.
OUTSIDE_V1 = {("GET", "/livez"), ("GET", "/readyz"), ("GET", "/metrics")}


def _walk(routes: Iterable[Any]) -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield from ((method, route.path) for method in route.methods)
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers nested
            yield from _walk(route.original_router.routes)


def _routes(api: World) -> set[tuple[str, str]]:
    return set(_walk(api.client.app.routes))  # type: ignore[attr-defined]


def _call(api: World, key: tuple[str, str], headers: dict[str, str]) -> int:
    path, body, _ = MATRIX[key]
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return int(api.client.request(key[0], path, **kwargs).status_code)


def test_matrix_covers_every_route(api: World) -> None:
    routes = _routes(api)
    assert routes == set(MATRIX) | set(CONSOLE)


def test_only_probes_and_metrics_are_outside_v1() -> None:
    assert {key for key in MATRIX if not key[1].startswith("/v1/")} == OUTSIDE_V1


def test_every_route_is_documented_in_openapi(api: World) -> None:
    schema = api.client.get("/openapi.json").json()
    documented = {(m.upper(), path) for path, ops in schema["paths"].items() for m in ops}
    assert documented == set(MATRIX)
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
    assert api.client.get("/docs").status_code == 200


def test_every_route_allows_exactly_the_intended_principals(api: World) -> None:
    def denials() -> Counter[str]:
        return Counter(e["actor"] for e in api.audit_events("request.denied"))

    before = denials()
    expected_denials: Counter[str] = Counter()
    wrong = []
    for key in sorted(MATRIX):
        allowed = MATRIX[key][2]
        for who in sorted(ALL):
            status = _call(api, key, api.h(who))
            if who in allowed and status in (401, 403):
                wrong.append(f"{who} refused {status} on {key}")
            if who not in allowed:
                expected_denials[who] += 1
                if status != 403:
                    wrong.append(f"{who} got {status} on {key}, expected 403")
    assert wrong == []
    after = denials()
    # The auditor's own reads are not denials; every 403 above left exactly one request.denied event.
    assert {who: after[who] - before[who] for who in ALL} == {who: expected_denials[who] for who in ALL}


@pytest.mark.parametrize("header", [None, "Bearer sbx_not-a-real-token", "Basic YWxhZGRpbjpvcGVu", "Bearer"])
def test_every_route_but_health_needs_a_valid_token(api: World, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    before = len(api.audit_events("auth.failed"))
    for key in sorted(MATRIX):
        status = _call(api, key, headers)
        if key in PUBLIC:
            # Answered without a token: 200, or 404 for a dummy id (a published table that does not exist).
            assert status in (200, 404), key
        else:
            assert status == 401, key
    assert len(api.audit_events("auth.failed")) - before == len(MATRIX) - len(PUBLIC)


def test_revoked_token_stops_working(api: World) -> None:
    created = api.client.post(
        "/v1/principals", headers=api.h("admin"), json={"name": "temp-op", "role": "operator"}
    ).json()
    token = {"Authorization": f"Bearer {created['token']}"}
    assert api.client.get("/v1/whoami", headers=token).json()["name"] == "temp-op"
    revoked = api.client.delete("/v1/principals/temp-op/tokens", headers=api.h("admin"))
    assert revoked.json() == {"principal": "temp-op", "revoked": 1}
    assert api.client.get("/v1/whoami", headers=token).status_code == 401
    fresh = api.client.post("/v1/principals/temp-op/tokens", headers=api.h("admin")).json()["token"]
    assert api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def _console_call(api: World, key: tuple[str, str], visitor: ConsoleSession) -> Any:
    path, _ = CONSOLE[key]
    if key[0] == "GET":
        return visitor.get(api.client, path)
    return visitor.post(api.client, path)


def _refused(answer: Any) -> bool:
    """Refused: 401, 403, or a page sent back to sign-in (sign-out's own answer goes there too)."""
    sent_back = answer.request.method == "GET" and answer.headers.get("location") == C + "/sign-in"
    return answer.status_code in (401, 403) or sent_back


def test_every_console_page_allows_exactly_the_intended_principals(api: World) -> None:
    def denials() -> Counter[str]:
        return Counter(e["actor"] for e in api.audit_events("request.denied"))

    before = denials()
    expected_denials: Counter[str] = Counter()
    wrong = []
    for who in sorted(ALL):
        session = sign_in(api.client, api.tokens[who])
        for key in sorted(CONSOLE):
            # Signing out ends its session: it gets one of its own.
            signing_out = key == ("POST", C + "/sign-out")
            answer = _console_call(api, key, sign_in(api.client, api.tokens[who]) if signing_out else session)
            allowed = CONSOLE[key][1]
            if who in allowed and _refused(answer):
                wrong.append(f"{who} refused {answer.status_code} on {key}")
            if who not in allowed:
                expected_denials[who] += 1
                if answer.status_code != 403:
                    wrong.append(f"{who} got {answer.status_code} on {key}, expected 403")
    assert wrong == []
    after = denials()
    assert {who: after[who] - before[who] for who in ALL} == {who: expected_denials[who] for who in ALL}


def test_every_console_page_but_sign_in_needs_a_session(api: World) -> None:
    visitor = anonymous(api.client)
    for key in sorted(CONSOLE):
        answer = _console_call(api, key, visitor)
        if key in CONSOLE_OPEN:
            assert not _refused(answer), key
        elif key[0] == "GET":
            assert (answer.status_code, answer.headers["location"]) == (303, C + "/sign-in"), key
        else:
            assert answer.status_code == 401, key


def test_every_console_form_needs_its_csrf_token(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    before = len(api.audit_events("console.csrf_refused"))
    posts = sorted(key for key in CONSOLE if key[0] == "POST")
    for key in posts:
        forged = ConsoleSession(cookie=alice.cookie, csrf="0" * 64)
        assert _console_call(api, key, forged).status_code == 403, key
    assert len(api.audit_events("console.csrf_refused")) - before == len(posts)
