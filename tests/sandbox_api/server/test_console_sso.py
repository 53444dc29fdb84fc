"""Console sign-in by redirect to the single sign-on issuer: the authorisation code flow with PKCE (S256).

The issuer is real and made at test time (``tests/sandbox_api/local_issuer.py``): discovery document,
``/authorize`` and a ``/token`` endpoint that redeems a code once, only with the verifier its challenge
came from. Each refusal test is a way in that would work if the check it names were missing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox_api.server.console.session import COOKIE, FLOW_COOKIE
from tests.sandbox_api.api_helpers import World, world
from tests.sandbox_api.console_helpers import CSRF_FIELD, ConsoleSession, anonymous, session_cookie
from tests.sandbox_api.local_issuer import AUDIENCE, LocalIssuer, local_issuer

ROLE_MAP = {"analyst": "operator", "audit-team": "auditor"}
CALLBACK = "/console/sign-in/sso/callback"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[World]:
    # No authorisation or token endpoint configured: both are read from the issuer's discovery document.
    with world(
        tmp_path_factory.mktemp("state"),
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.jwks_url,
        oidc_role_map=ROLE_MAP,
    ) as deployment:
        yield deployment


@pytest.fixture(autouse=True)
def _honest_issuer(issuer: LocalIssuer) -> Iterator[None]:
    issuer.login = {}
    issuer.nonce_override = None
    yield
    issuer.nonce_override = None


def _cookie(response: Any, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key == name:
            return rest.split(";")[0].strip('"')
    return None


@dataclass(frozen=True)
class Started:
    flow_cookie: str
    authorize: dict[str, str]  # the query the browser took to the issuer
    callback: str  # path and query the issuer sent the browser back to

    @property
    def code(self) -> str:
        return parse_qs(urlsplit(self.callback).query)["code"][0]


def start(api: World, visitor: ConsoleSession) -> Started:
    """Press "Sign in with single sign-on", then let the browser visit the issuer (which signs in at once)."""
    answer = visitor.get(api.client, "/console/sign-in/sso")
    assert answer.status_code == 303, answer.text
    flow_cookie = _cookie(answer, FLOW_COOKIE)
    assert flow_cookie is not None
    set_cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(FLOW_COOKIE))
    assert "SameSite=lax" in set_cookie
    assert "HttpOnly" in set_cookie
    assert "Secure" in set_cookie
    location = answer.headers["location"]
    authorize = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    back = httpx.get(location, follow_redirects=False)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["location"])
    assert target.path == CALLBACK
    return Started(flow_cookie, authorize, f"{target.path}?{target.query}")


def finish(api: World, started: Started, *, callback: str | None = None, flow: str | None = "same") -> Any:
    cookies = {} if flow is None else {FLOW_COOKIE: started.flow_cookie if flow == "same" else flow}
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return api.client.get(
        callback or started.callback, headers={"Cookie": header} if header else {}, follow_redirects=False
    )


def _failures(api: World) -> int:
    return sum(1 for e in api.audit_events("auth.failed") if e["details"].get("path") == CALLBACK)


def test_sign_in_by_redirect_opens_the_same_session_as_a_token_and_is_audited(
    api: World, issuer: LocalIssuer
) -> None:
    visitor = anonymous(api.client)
    assert "Sign in with single sign-on" in api.client.get("/console/sign-in").text
    started = start(api, visitor)
    query = started.authorize
    assert (query["response_type"], query["client_id"], query["code_challenge_method"]) == (
        "code",
        AUDIENCE,
        "S256",
    )
    assert query["redirect_uri"] == "http://testserver" + CALLBACK
    assert len(query["state"]) >= 22
    assert len(query["nonce"]) >= 22
    assert query["state"] != query["nonce"]
    assert not any("verifier" in key for key in query)

    answer = finish(api, started)
    assert answer.status_code == 200, answer.text
    assert 'http-equiv="refresh" content="0;url=/console/jobs"' in answer.text
    # The flow cookie is spent; the session cookie is the console's ordinary one.
    assert _cookie(answer, FLOW_COOKIE) == ""
    cookie = session_cookie(answer)
    home = api.client.get("/console/home", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert home.status_code == 200
    assert "sso-ann" in home.text
    # The gateway redeemed the code with the verifier whose S256 challenge went to the issuer.
    redeemed = issuer.token_requests[-1]
    digest = hashlib.sha256(redeemed["code_verifier"].encode("ascii")).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    assert redeemed["code"] == started.code
    signed_in = [e for e in api.audit_events("console.signed_in") if e["actor"] == "sso-ann"]
    assert signed_in[-1]["details"] == {"role": "operator", "method": "sso"}
    # A form on the console works with this session: its CSRF token is the session's.
    found = CSRF_FIELD.search(home.text)
    assert found is not None
    session = ConsoleSession(cookie=cookie, csrf=found.group(1))
    assert session.post(api.client, "/console/sign-out").status_code == 303


def test_an_answer_with_another_state_is_refused_before_its_code_is_redeemed(
    api: World, issuer: LocalIssuer
) -> None:
    started = start(api, anonymous(api.client))
    before, asked = _failures(api), len(issuer.token_requests)
    forged = started.callback.replace("state=", "state=x")
    answer = finish(api, started, callback=forged)
    assert answer.status_code == 401
    assert "does not belong to the sign-in this browser started" in answer.text
    assert _cookie(answer, COOKIE) is None or "sso-ann" not in answer.text
    assert len(issuer.token_requests) == asked  # the code was never spent
    assert _failures(api) == before + 1
    # Without the state parameter at all: refused the same way.
    bare = started.callback.split("&state=")[0]
    assert finish(api, started, callback=bare).status_code == 401


def test_a_replayed_code_signs_nobody_in(api: World, issuer: LocalIssuer) -> None:
    started = start(api, anonymous(api.client))
    assert finish(api, started).status_code == 200
    # The same answer again, with a copy of the flow cookie: the issuer refuses a code used once.
    again = finish(api, started)
    assert again.status_code == 401
    assert "invalid_grant" in again.text
    assert issuer.grants[started.code].used
    # And in a browser that never started a sign-in: nothing to finish.
    elsewhere = finish(api, started, flow=None)
    assert elsewhere.status_code == 401


def test_an_id_token_with_another_nonce_is_refused(api: World, issuer: LocalIssuer) -> None:
    started = start(api, anonymous(api.client))
    issuer.nonce_override = "a-nonce-from-another-sign-in"
    before = _failures(api)
    answer = finish(api, started)
    assert answer.status_code == 401
    assert "nonce" in answer.text
    assert _failures(api) == before + 1


def test_without_the_flow_cookie_and_its_verifier_the_code_is_not_redeemed(
    api: World, issuer: LocalIssuer
) -> None:
    started = start(api, anonymous(api.client))
    asked = len(issuer.token_requests)
    missing = finish(api, started, flow=None)
    assert missing.status_code == 401
    assert "not started in this browser" in missing.text
    # A session cookie is sealed under the same key but cannot stand in for the flow cookie.
    session = anonymous(api.client).cookie
    assert finish(api, started, flow=session).status_code == 401
    assert len(issuer.token_requests) == asked
    # The issuer refuses the code without the verifier: whoever intercepts a code cannot redeem it.
    refused = httpx.post(
        issuer.url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": started.code,
            "client_id": AUDIENCE,
            "redirect_uri": started.authorize["redirect_uri"],
        },
    )
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_the_sign_in_page_offers_no_redirect_where_single_sign_on_is_off(tmp_path: Any) -> None:
    with world(tmp_path / "state") as plain:
        assert "Sign in with single sign-on" not in plain.client.get("/console/sign-in").text
        visitor = anonymous(plain.client)
        assert visitor.get(plain.client, "/console/sign-in/sso").status_code == 404
