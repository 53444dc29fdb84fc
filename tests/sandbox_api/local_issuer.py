"""A single sign-on issuer made at test time: its own keys, its JWKS served over HTTP on loopback.

Tests sign ID tokens with it (and forge bad ones) and rotate its keys the way an identity provider does:
a new key is published, the old one withdrawn.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
class LocalIssuer:
    url: str  # the issuer identifier (iss)
    jwks_url: str
    keys: list[SigningKey] = field(default_factory=list)  # published; the first signs
    fetches: int = 0

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
def local_issuer(algorithm: str = "RS256") -> Iterator[LocalIssuer]:
    """An issuer whose JWKS is served on 127.0.0.1 (a free port) until the block ends."""
    holder: list[LocalIssuer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = holder[0]
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            issuer.fetches += 1
            body = json.dumps(issuer.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    holder.append(LocalIssuer(url=base, jwks_url=base + "/jwks.json", keys=[new_key(algorithm)]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
