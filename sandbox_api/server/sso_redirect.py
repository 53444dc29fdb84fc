"""Single sign-on by redirect: the OpenID Connect authorisation code flow with PKCE (S256), as a public
client (OpenID Connect Core 1.0 section 3.1, RFC 7636, RFC 9700 section 2.1.1).

This module knows the issuer's side only: where its endpoints are (its discovery document, or the
``oidc_authorize_url`` / ``oidc_token_url`` settings), the address the browser is sent to, and the
exchange of a code for an ID token. Checking ``state`` and ``nonce`` and opening a console session is
the console's job (``console/pages_sso.py``); verifying the ID token is ``sso.SingleSignOn``'s, the same
check every API request with an ID token gets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from crypto.pkce import s256_challenge
from sandbox_api.errors import NotAuthenticated, ServiceUnavailable
from sandbox_api.server.settings import Settings

DISCOVERY_PATH = "/.well-known/openid-configuration"
TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str


def trusted_url(url: str) -> bool:
    """https, or plain http on loopback only (the same rule as ``oidc_jwks_url``).

    >>> trusted_url("https://login.example.gov/auth"), trusted_url("http://127.0.0.1:8/a")
    (True, True)
    >>> trusted_url("http://login.example.gov/auth"), trusted_url("javascript:alert(1)")
    (False, False)
    """
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in {"127.0.0.1", "::1", "localhost"}
    )


@dataclass
class CodeFlow:
    """The issuer's authorisation and token endpoints, and the two requests the flow makes of them."""

    issuer: str
    client_id: str
    configured: Endpoints | None = None
    redirect_url: str | None = None  # None: the callback's address as the browser reached it
    _discovered: Endpoints | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CodeFlow | None:
        if settings.oidc_issuer is None or settings.oidc_audience is None:
            return None
        configured = None
        if settings.oidc_authorize_url and settings.oidc_token_url:
            configured = Endpoints(settings.oidc_authorize_url, settings.oidc_token_url)
        return cls(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id or settings.oidc_audience,
            configured=configured,
            redirect_url=settings.oidc_redirect_url,
        )

    def endpoints(self) -> Endpoints:
        if self.configured is not None:
            return self.configured
        with self._lock:
            if self._discovered is None:
                self._discovered = self._discover()
            return self._discovered

    def _discover(self) -> Endpoints:
        document = self._fetch_json("GET", self.issuer.rstrip("/") + DISCOVERY_PATH, None)
        # OpenID Connect Discovery section 4.3: the document must name the very issuer it was read from,
        # or a document planted elsewhere could send sign-ins to another issuer.
        if document.get("issuer") != self.issuer:
            raise ServiceUnavailable("the issuer's discovery document names another issuer")
        authorize, token = document.get("authorization_endpoint"), document.get("token_endpoint")
        if not isinstance(authorize, str) or not isinstance(token, str):
            raise ServiceUnavailable("the issuer's discovery document has no authorisation or token endpoint")
        if not (trusted_url(authorize) and trusted_url(token)):
            raise ServiceUnavailable("the issuer's endpoints must be https:// (plain http only on loopback)")
        methods = document.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise ServiceUnavailable("the issuer does not support PKCE with S256")
        return Endpoints(authorize, token)

    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        """Where the browser goes to sign in: only the challenge of the verifier leaves the gateway."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": s256_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = self.endpoints().authorize
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def exchange(self, *, code: str, redirect_uri: str, verifier: str) -> str:
        """The ID token the issuer gives for ``code`` and its verifier; ``NotAuthenticated`` when it
        refuses (a used, expired or stolen code, a wrong verifier)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        answer = self._fetch_json("POST", self.endpoints().token, form)
        if "error" in answer:
            reason = str(answer.get("error"))[:64]
            raise NotAuthenticated(f"the issuer refused the sign-in code ({reason}); sign in again")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise NotAuthenticated("the issuer's answer has no ID token; sign in again")
        return id_token

    @staticmethod
    def _fetch_json(method: str, url: str, form: dict[str, str] | None) -> dict[str, Any]:
        try:
            with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
                answer = client.request(method, url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("the single sign-on issuer cannot be reached; try again") from exc
        # A token endpoint answers 400 with an OAuth error body (RFC 6749 section 5.2): read it too.
        if answer.status_code not in (200, 400, 401) or len(answer.content) > MAX_ANSWER_BYTES:
            raise ServiceUnavailable(f"the single sign-on issuer answered {answer.status_code}")
        try:
            body = answer.json()
        except ValueError as exc:
            raise ServiceUnavailable("the single sign-on issuer's answer is not JSON") from exc
        if not isinstance(body, dict):
            raise ServiceUnavailable("the single sign-on issuer's answer is not a JSON object")
        if answer.status_code != 200 and "error" not in body:
            raise ServiceUnavailable(f"the single sign-on issuer answered {answer.status_code}")
        return body
