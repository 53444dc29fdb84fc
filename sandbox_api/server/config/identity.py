"""Tokens and single sign-on (OIDC)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic_settings import BaseSettings


class IdentitySettings(BaseSettings):
    """One part of ``Settings`` (``server/settings.py``)."""

    token_ttl_days: PositiveInt = Field(
        90,
        description=(
            "Lifetime of a bearer token issued without an explicit one (`sandbox token issue --days`); "
            "each token's expiry is shown when it is issued and in `sandbox token list`. Tokens issued "
            "before expiries existed expire this many days after their creation."
        ),
    )
    token_max_ttl_days: PositiveInt = Field(
        365,
        description="Longest lifetime an administrator may give a bearer token, in days.",
    )
    oidc_issuer: str | None = Field(
        None,
        description=(
            "Single sign-on: the OpenID Connect issuer (`iss`) whose signed JWTs are accepted as bearer "
            "tokens beside the service's own. Unset: single sign-on is off. Needs `oidc_audience` and "
            "`oidc_jwks_url` (docs/security.md)."
        ),
    )
    oidc_audience: str | None = Field(
        None,
        description="Single sign-on: the audience (`aud`) a JWT must name: this service's client id.",
    )
    oidc_jwks_url: str | None = Field(
        None,
        description=(
            "Single sign-on: the issuer's JSON Web Key Set (`jwks_uri`). Must be `https://` unless the "
            "host is loopback."
        ),
    )
    oidc_algorithms: tuple[str, ...] = Field(
        ("RS256", "ES256"),
        description=(
            "Single sign-on: signature algorithms accepted, asymmetric only (RS*, PS*, ES*, EdDSA); "
            "`HS*` and `none` are refused so a public key can never serve as an HMAC secret."
        ),
    )
    oidc_name_claim: str = Field(
        "preferred_username",
        description="Single sign-on: the claim that names the principal (audit actor, job owner, grantee).",
    )
    oidc_role_claim: str = Field(
        "roles",
        description=(
            "Single sign-on: the claim (a string or a list) whose values `oidc_role_map` maps to a role."
        ),
    )
    oidc_role_map: dict[str, str] = Field(
        {},
        description=(
            'Single sign-on: claim value to role, e.g. `{"sandbox-analyst": "operator"}`. A token whose '
            "values map to no role, or to two different roles, is refused."
        ),
    )
    oidc_domain_claim: str = Field(
        "domain",
        description="Single sign-on: the claim that gives a steward's or domain administrator's domain.",
    )
    oidc_groups_claim: str = Field(
        "groups",
        description="Single sign-on: the claim (a list of names) that gives the principal's groups.",
    )
    oidc_leeway_s: NonNegativeInt = Field(
        30,
        description="Single sign-on: clock skew allowed on `exp`, `nbf` and `iat`, in seconds.",
    )
    oidc_jwks_cache_s: PositiveInt = Field(
        300,
        description=(
            "Single sign-on: how long the issuer's keys are cached, in seconds. A token signed by an "
            "unknown key id refetches the set at once (key rotation), at most every `oidc_jwks_refetch_s`."
        ),
    )
    oidc_jwks_refetch_s: PositiveInt = Field(
        10,
        description=(
            "Single sign-on: least time between two fetches of the key set caused by unknown key ids, so "
            "made-up key ids cannot turn every request into a request to the issuer."
        ),
    )
    oidc_client_id: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: this service's client id at the issuer (a public client "
            "using PKCE). Unset: `oidc_audience`, the audience its ID tokens name."
        ),
    )
    oidc_authorize_url: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: the issuer's authorisation endpoint. Unset (with "
            "`oidc_token_url`): read from the issuer's `/.well-known/openid-configuration`."
        ),
    )
    oidc_token_url: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: the issuer's token endpoint. Unset (with "
            "`oidc_authorize_url`): read from the issuer's discovery document."
        ),
    )
    oidc_redirect_url: str | None = Field(
        None,
        description=(
            "Console single sign-on by redirect: the callback address registered at the issuer, "
            "`https://HOST/console/sign-in/sso/callback`. Unset: the address the browser reached."
        ),
    )
