"""A single sign-on issuer made at test time: its own keys, its JWKS served over HTTP on loopback.

Tests sign ID tokens with it (and forge bad ones) and rotate its keys the way an identity provider does:
a new key is published, the old one withdrawn. It also runs the authorisation code flow with PKCE the
way an OpenID Connect provider does: a discovery document, ``/authorize`` (which signs in ``login`` at
once and sends the browser back with a one-use code) and ``/token`` (which redeems a code only with the
verifier whose S256 challenge it was issued for, and only once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "data-sandbox"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    kid: str
    private: PrivateKeyTypes
    algorithm: str  # RS256 or ES256

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()  # type: ignore[union-attr]
        family = RSAAlgorithm if self.algorithm.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = json.loads(family.to_jwk(public))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        public = self.private.public_key()  # type: ignore[union-attr]
        pem: bytes = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem


def new_key(algorithm: str = "RS256") -> SigningKey:
    private: PrivateKeyTypes
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid=uuid.uuid4().hex[:16], private=private, algorithm=algorithm)


@dataclass
class Grant:
    """A code the issuer handed out, and what redeeming it requires."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    claims: dict[str, Any]
    used: bool = False


@dataclass
class LocalIssuer:
    url: str  # the issuer identifier (iss)
    jwks_url: str
    keys: list[SigningKey] = field(default_factory=list)  # published; the first signs
    fetches: int = 0
    # The code flow: who /authorize signs in (claims overriding the defaults), the codes it handed out,
    # every token request as received, and a nonce to put in ID tokens instead of the requested one.
    login: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    nonce_override: str | None = None
    consent_page: bool = False  # /authorize shows an "Allow" button instead of answering at once

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.keys[0].algorithm],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, query: Mapping[str, str]) -> tuple[int, str]:
        """(status, where to send the browser) for an authorisation request; PKCE S256 is required."""
        redirect = query.get("redirect_uri", "")
        if (
            query.get("response_type") != "code"
            or query.get("client_id") != AUDIENCE
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
            or not redirect
        ):
            return 400, ""
        code = uuid.uuid4().hex
        self.grants[code] = Grant(
            client_id=query["client_id"],
            redirect_uri=redirect,
            challenge=query["code_challenge"],
            nonce=query.get("nonce"),
            claims=dict(self.login),
        )
        back = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        return 302, f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(back)}"

    def redeem(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: one use per code, the same client and redirect, the right verifier."""
        self.token_requests.append(dict(form))
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        grant.used = True  # RFC 6749 section 4.1.2: a code is good once
        verifier = form.get("code_verifier", "")
        challenge = b64url(hashlib.sha256(verifier.encode("ascii")).digest()) if verifier else ""
        if (
            form.get("grant_type") != "authorization_code"
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or not hmac.compare_digest(challenge, grant.challenge)
        ):
            return 400, {"error": "invalid_grant", "error_description": "the grant does not match"}
        nonce = self.nonce_override if self.nonce_override is not None else grant.nonce
        return 200, {"token_type": "Bearer", "id_token": self.token(nonce=nonce, **grant.claims)}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def rotate(self) -> SigningKey:
        """Publish a new signing key and withdraw the old ones."""
        old = self.keys[0]
        self.keys[:] = [new_key(old.algorithm)]
        return old

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "u-" + uuid.uuid4().hex[:8],
            "iat": now,
            "exp": now + 300,
            "preferred_username": "sso-ann",
            "roles": ["analyst"],
            "groups": ["analysts", "Not A Valid Group"],
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def token(
        self,
        *,
        key: SigningKey | None = None,
        headers: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        key = key or self.keys[0]
        merged = {"kid": key.kid, **(headers or {})}
        return jwt.encode(
            self.claims(**claims),
            key.private,  # type: ignore[arg-type]
            algorithm=key.algorithm,
            headers={k: v for k, v in merged.items() if v is not None},  # None: leave the header out
        )

    def forged_hmac(self, secret: bytes, *, kid: str, alg: str = "HS256", **claims: Any) -> str:
        """A token "signed" with HMAC under ``secret`` (e.g. the issuer's public key), built by hand:
        PyJWT itself refuses to use a PEM public key as an HMAC secret."""
        header = b64url(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
        payload = b64url(json.dumps(self.claims(**claims)).encode())
        signing_input = f"{header}.{payload}".encode()
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
        return f"{header}.{payload}." + b64url(hmac.new(secret, signing_input, digest).digest())

    def unsigned(self, *, kid: str, alg: str = "none", **claims: Any) -> str:
        header = b64url(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
        payload = b64url(json.dumps(self.claims(**claims)).encode())
        return f"{header}.{payload}."


@contextmanager
def local_issuer(algorithm: str = "RS256", *, host: str = "127.0.0.1") -> Iterator[LocalIssuer]:
    """An issuer served on 127.0.0.1 (a free port) until the block ends; ``host`` is the name it goes by
    in its addresses (``localhost`` makes it another site than a console on 127.0.0.1, for a browser)."""
    holder: list[LocalIssuer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = holder[0]
            path, _, query = self.path.partition("?")
            if path == "/jwks.json":
                issuer.fetches += 1
                self._json(200, issuer.jwks())
            elif path == "/.well-known/openid-configuration":
                self._json(200, issuer.discovery())
            elif path == "/authorize" and issuer.consent_page:
                # A page on the issuer's own site whose button sends the browser back, as a real sign-in
                # page does: the way back is then a navigation the issuer's site started.
                fields = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                    for k, v in parse_qsl(query)
                )
                page = f'<form method="get" action="/authorize/allow">{fields}<button>Allow</button></form>'
                body = f"<!doctype html><title>Issuer</title>{page}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif path in ("/authorize", "/authorize/allow"):
                status, location = issuer.authorize(dict(parse_qsl(query)))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode("ascii")))
            self._json(*holder[0].redeem(form))

        def _json(self, status: int, document: Mapping[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://{host}:{server.server_address[1]}"
    holder.append(LocalIssuer(url=base, jwks_url=base + "/jwks.json", keys=[new_key(algorithm)]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
