"""Single sign-on: OpenID Connect ID tokens (JWTs) from one issuer, verified against its JWKS.

Verification follows RFC 7519 section 7.2 and RFC 8725 (JWT best current practices), with PyJWT:

* the algorithm comes from this deployment's allow-list (``oidc_algorithms``: asymmetric only), never
  from the token alone, and it must also fit the key the ``kid`` names (an RSA key verifies RS*/PS*,
  an EC key ES*, an OKP key EdDSA). That closes both classic confusions: ``alg: none`` and ``HS256``
  "signed" with the issuer's public key as the HMAC secret (RFC 8725 section 2.1);
* ``iss`` must equal ``oidc_issuer`` and ``aud`` must contain ``oidc_audience`` (RFC 8725 sections 3.8,
  3.9); ``exp`` and ``iat`` are required, ``exp``/``nbf`` checked with ``oidc_leeway_s`` of skew;
* keys come only from ``oidc_jwks_url`` (never from ``jku``/``x5u``/``jwk`` headers). The set is cached;
  a ``kid`` the cache lacks refetches it (the issuer rotated its keys), at most once every
  ``oidc_jwks_refetch_s`` so made-up key ids cannot make every request a request to the issuer.

The claims then become a principal through ``sso_claims`` (configured role, domain and group mapping).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from sandbox_api.errors import NotAuthenticated, ServiceUnavailable
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.settings import Settings
from sandbox_api.server.sso_claims import ClaimMapping, principal_from_claims

#: Which key type may verify which algorithm family (RFC 7518 sections 3.3-3.5, RFC 8037 section 3.1).
_KEY_TYPE_FOR = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud"]


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts; the service's own tokens start with ``sbx_``."""
    return token.count(".") == 2 and not token.startswith("sbx_")


@dataclass
class KeySet:
    """The issuer's signing keys, cached, refetched on an unknown ``kid`` at most every ``refetch_s``."""

    client: PyJWKClient
    refetch_s: float
    monotonic: Callable[[], float] = time.monotonic
    _last_refetch: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def key(self, kid: str) -> PyJWK:
        found = self._find(self._keys(refresh=False), kid)
        if found is not None:
            return found
        with self._lock:
            now = self.monotonic()
            may_refetch = self._last_refetch is None or now - self._last_refetch >= self.refetch_s
            if may_refetch:
                self._last_refetch = now
        if may_refetch:
            found = self._find(self._keys(refresh=True), kid)
            if found is not None:
                return found
        # Only a bounded prefix of the caller's kid goes into the refusal (and so into the audit log).
        raise NotAuthenticated(f"the token's key id {kid[:64]!r} is not among the issuer's current keys")

    def _keys(self, *, refresh: bool) -> list[PyJWK]:
        try:
            return self.client.get_signing_keys(refresh=refresh)
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailable("the single sign-on issuer's keys cannot be fetched; try again") from exc
        except jwt.PyJWKClientError as exc:
            raise ServiceUnavailable("the single sign-on issuer published no usable signing key") from exc

    @staticmethod
    def _find(keys: list[PyJWK], kid: str) -> PyJWK | None:
        return next((k for k in keys if k.key_id == kid), None)


@dataclass(frozen=True)
class SingleSignOn:
    issuer: str
    audience: str
    algorithms: frozenset[str]
    leeway_s: int
    keys: KeySet
    mapping: ClaimMapping

    @classmethod
    def from_settings(cls, settings: Settings) -> SingleSignOn | None:
        """None when single sign-on is off (no ``oidc_issuer``)."""
        if settings.oidc_issuer is None or settings.oidc_audience is None or settings.oidc_jwks_url is None:
            return None
        client = PyJWKClient(
            settings.oidc_jwks_url,
            cache_keys=False,
            cache_jwk_set=True,
            lifespan=settings.oidc_jwks_cache_s,
            timeout=5,
        )
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            algorithms=frozenset(settings.oidc_algorithms),
            leeway_s=settings.oidc_leeway_s,
            keys=KeySet(client=client, refetch_s=float(settings.oidc_jwks_refetch_s)),
            mapping=ClaimMapping(
                name_claim=settings.oidc_name_claim,
                role_claim=settings.oidc_role_claim,
                role_map={value: Role(role) for value, role in settings.oidc_role_map.items()},
                domain_claim=settings.oidc_domain_claim,
                groups_claim=settings.oidc_groups_claim,
            ),
        )

    def authenticate(self, token: str) -> Principal:
        return principal_from_claims(self.claims(token), self.mapping)

    def claims(self, token: str) -> Mapping[str, Any]:
        """The verified claims of ``token``, or ``NotAuthenticated`` saying which check failed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise NotAuthenticated("the bearer token is not a well-formed JWT") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            allowed = ", ".join(sorted(self.algorithms))
            shown = algorithm[:16] if isinstance(algorithm, str) else type(algorithm).__name__
            raise NotAuthenticated(f"the token's algorithm {shown!r} is not accepted (accepted: {allowed})")
        if not isinstance(kid, str) or not kid:
            raise NotAuthenticated("the token names no key id (kid); the issuer's keys are chosen by it")
        key = self.keys.key(kid)
        if _KEY_TYPE_FOR.get(algorithm[:2]) != key.key_type:
            raise NotAuthenticated(f"key {kid[:64]!r} does not verify {algorithm} signatures")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthenticated("the single sign-on token has expired; sign in again") from exc
        except jwt.InvalidAudienceError as exc:
            raise NotAuthenticated("the single sign-on token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise NotAuthenticated("the single sign-on token comes from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise NotAuthenticated(f"the single sign-on token lacks the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"the single sign-on token is invalid ({type(exc).__name__})") from exc
        return claims
