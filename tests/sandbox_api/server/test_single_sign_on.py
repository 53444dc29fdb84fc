"""Single sign-on against a real issuer made at test time (keys generated here, JWKS on loopback).

Each attack on JWT verification is a test that would pass, that is let the caller in, if the check it
names were missing: expiry, audience, issuer, a key the issuer never published, algorithm confusion
(HMAC keyed with the public key, ``none``, a key of the wrong type), stale keys after a rotation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jwt import PyJWKClient
from pydantic import ValidationError

from sandbox_api.errors import NotAuthenticated, ServiceUnavailable
from sandbox_api.server.settings import Settings
from sandbox_api.server.sso import KeySet
from tests.sandbox_api.api_helpers import DOMAIN, GOOD_SQL, SCOPE, World, bearer, world
from tests.sandbox_api.console_helpers import anonymous, sign_in
from tests.sandbox_api.local_issuer import AUDIENCE, LocalIssuer, local_issuer, new_key

ROLE_MAP = {"analyst": "operator", "hb-steward": "steward", "audit-team": "auditor"}


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[World]:
    with world(
        tmp_path_factory.mktemp("state"),
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.jwks_url,
        oidc_role_map=ROLE_MAP,
        oidc_jwks_refetch_s=1,
    ) as deployment:
        yield deployment


def whoami(api: World, token: str) -> tuple[int, dict[str, Any]]:
    answer = api.client.get("/v1/whoami", headers=bearer(token))
    body: dict[str, Any] = answer.json()
    return answer.status_code, body


def refused(api: World, token: str) -> str:
    status, body = whoami(api, token)
    assert status == 401, body
    detail: str = body["detail"]
    return detail


# --- the way in ---------------------------------------------------------------------------------------


def test_a_token_from_the_issuer_signs_in_with_the_mapped_role_and_groups(
    api: World, issuer: LocalIssuer
) -> None:
    status, body = whoami(api, issuer.token())
    assert status == 200
    # "Not A Valid Group" could never be named by a scope: it is dropped, not refused.
    assert body == {
        "name": "sso-ann",
        "role": "operator",
        "domain": None,
        "groups": ["analysts"],
        "disabled": False,
    }


def test_a_signed_in_operator_submits_a_job_under_their_groups_grant(api: World, issuer: LocalIssuer) -> None:
    token = issuer.token()
    answer = api.client.post("/v1/jobs", headers=bearer(token), json={"scope": SCOPE, "sql": GOOD_SQL})
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["job_id"], who="admin")
    assert job["owner"] == "sso-ann"


def test_the_services_own_tokens_still_work_beside_single_sign_on(api: World) -> None:
    assert whoami(api, api.tokens["admin"])[0] == 200


def test_a_steward_gets_the_domain_from_its_claim(api: World, issuer: LocalIssuer) -> None:
    token = issuer.token(preferred_username="sso-stella", roles=["hb-steward"], domain=DOMAIN)
    assert whoami(api, token)[1]["domain"] == DOMAIN
    assert "domain" in refused(api, issuer.token(preferred_username="sso-stella", roles=["hb-steward"]))


# --- claims that must be refused ----------------------------------------------------------------------


def test_an_expired_token_is_refused_beyond_the_leeway(api: World, issuer: LocalIssuer) -> None:
    now = int(time.time())
    assert "expired" in refused(api, issuer.token(exp=now - 120, iat=now - 600))
    assert whoami(api, issuer.token(exp=now - 5, iat=now - 600))[0] == 200  # within 30 s of skew


def test_a_token_for_another_audience_is_refused(api: World, issuer: LocalIssuer) -> None:
    assert "audience" in refused(api, issuer.token(aud="another-app"))
    assert "audience" in refused(api, issuer.token(aud=["another-app", "a-third"]))
    assert whoami(api, issuer.token(aud=["another-app", AUDIENCE]))[0] == 200


def test_a_token_from_another_issuer_is_refused(api: World, issuer: LocalIssuer) -> None:
    assert "issuer" in refused(api, issuer.token(iss="https://evil.example"))
    assert "issuer" in refused(api, issuer.token(iss=issuer.url + "/"))


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "iss"])
def test_a_token_without_a_required_claim_is_refused(api: World, issuer: LocalIssuer, claim: str) -> None:
    refused(api, issuer.token(**{claim: None}))


def test_a_token_signed_by_a_key_the_issuer_never_published_is_refused(
    api: World, issuer: LocalIssuer
) -> None:
    impostor = new_key()
    impostor.kid = issuer.keys[0].kid  # claims to be the issuer's key
    assert "InvalidSignatureError" in refused(api, issuer.token(key=impostor))


def test_a_tampered_payload_is_refused(api: World, issuer: LocalIssuer) -> None:
    header, _, signature = issuer.token().split(".")
    _, payload, _ = issuer.token(roles=["audit-team"]).split(".")
    refused(api, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize(
    ("role_claim", "reason"),
    [(["nothing-mapped"], "no role"), (["analyst", "audit-team"], "several roles"), (None, "no role")],
)
def test_claims_that_map_to_no_role_or_to_several_are_refused(
    api: World, issuer: LocalIssuer, role_claim: Any, reason: str
) -> None:
    assert reason in refused(api, issuer.token(roles=role_claim))


def test_an_identity_cannot_take_the_name_of_a_local_principal_of_another_role(
    api: World, issuer: LocalIssuer
) -> None:
    assert "local principal" in refused(api, issuer.token(preferred_username="admin"))
    assert "local principal" in refused(api, issuer.token(preferred_username="audra"))
    # Same name, role and domain: the same person, signing in another way.
    assert whoami(api, issuer.token(preferred_username="alice"))[1]["name"] == "alice"


def test_disabling_the_local_principal_locks_its_single_sign_on_identity_out(
    api: World, issuer: LocalIssuer
) -> None:
    token = issuer.token(preferred_username="bob")
    assert whoami(api, token)[0] == 200
    assert api.client.post("/v1/principals/bob/disable", headers=api.h("admin")).status_code == 200
    assert "disabled" in refused(api, token)
    assert api.client.post("/v1/principals/bob/enable", headers=api.h("admin")).status_code == 200
    assert whoami(api, token)[0] == 200


# --- algorithm confusion -------------------------------------------------------------------------------


def test_hmac_keyed_with_the_issuers_public_key_is_refused(api: World, issuer: LocalIssuer) -> None:
    key = issuer.keys[0]
    for alg in ("HS256", "HS384"):
        forged = issuer.forged_hmac(key.public_pem(), kid=key.kid, alg=alg, roles=["audit-team"])
        assert "not accepted" in refused(api, forged)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_an_unsigned_token_is_refused(api: World, issuer: LocalIssuer, alg: str) -> None:
    assert "not accepted" in refused(api, issuer.unsigned(kid=issuer.keys[0].kid, alg=alg))


def test_a_key_is_never_used_with_an_algorithm_of_another_family(api: World, issuer: LocalIssuer) -> None:
    ec_key = new_key("ES256")
    ec_key.kid = issuer.keys[0].kid  # ES256 header, but the kid names the issuer's RSA key
    assert "does not verify ES256" in refused(api, issuer.token(key=ec_key))


def test_a_token_without_a_key_id_is_refused(api: World, issuer: LocalIssuer) -> None:
    token = issuer.token(headers={"kid": None})
    assert "kid" in refused(api, token)


# --- keys at the issuer --------------------------------------------------------------------------------


def test_after_a_key_rotation_new_tokens_work_and_tokens_of_the_withdrawn_key_do_not(
    api: World, issuer: LocalIssuer
) -> None:
    before_rotation = issuer.token()
    assert whoami(api, before_rotation)[0] == 200
    time.sleep(1.1)  # past the refetch limit (oidc_jwks_refetch_s=1), as a real rotation would be
    fetches = issuer.fetches
    issuer.rotate()
    assert whoami(api, issuer.token())[0] == 200  # an unknown kid: the set is fetched again
    assert issuer.fetches == fetches + 1
    assert "not among the issuer's current keys" in refused(api, before_rotation)


def test_made_up_key_ids_do_not_turn_requests_into_fetches(api: World, issuer: LocalIssuer) -> None:
    stranger = new_key()
    time.sleep(1.1)
    fetches, start = issuer.fetches, time.monotonic()
    for _ in range(20):
        stranger.kid = uuid.uuid4().hex
        refused(api, issuer.token(key=stranger))
    allowed = 1 + int(time.monotonic() - start)  # one per second (oidc_jwks_refetch_s=1)
    assert allowed < 20
    assert issuer.fetches - fetches <= allowed


def test_an_unreachable_issuer_answers_unavailable_not_unauthenticated() -> None:
    keys = KeySet(client=PyJWKClient("http://127.0.0.1:9/jwks.json", timeout=1), refetch_s=10)
    with pytest.raises(ServiceUnavailable):
        keys.key("any")


def test_the_refetch_limit_holds_per_window(issuer: LocalIssuer) -> None:
    moments = iter([0.0, 0.5, 0.9, 5.0])
    keys = KeySet(client=PyJWKClient(issuer.jwks_url), refetch_s=1.0, monotonic=lambda: next(moments))
    start = issuer.fetches
    for _ in range(3):
        with pytest.raises(NotAuthenticated):
            keys.key("unknown")
    assert issuer.fetches - start == 2  # the first look (cache empty) and one refetch at 0.0
    with pytest.raises(NotAuthenticated):
        keys.key("unknown")  # at 5.0: allowed again
    assert issuer.fetches - start == 3


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"oidc_algorithms": ["RS256", "HS256"]}, "HS256"),
        ({"oidc_algorithms": ["none"]}, "none"),
        ({"oidc_role_map": {"x": "superuser"}}, "no role"),
        ({"oidc_issuer": "https://idp.example"}, "oidc_audience"),
        (
            {"oidc_issuer": "https://idp", "oidc_audience": "a", "oidc_jwks_url": "http://idp.example/jwks"},
            "https",
        ),
    ],
)
def test_unsafe_single_sign_on_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**overrides)


def test_the_web_console_signs_in_with_an_id_token_and_audits_it(api: World, issuer: LocalIssuer) -> None:
    session = sign_in(api.client, issuer.token())
    assert "sso-ann" in session.get(api.client, "/console/home").text
    signed_in = [e for e in api.audit_events("console.signed_in") if e["actor"] == "sso-ann"]
    assert signed_in[-1]["details"]["method"] == "sso"
    expired = anonymous(api.client).post(
        api.client, "/console/sign-in", {"token": issuer.token(exp=int(time.time()) - 60)}
    )
    assert expired.status_code == 401
