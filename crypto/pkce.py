"""Proof Key for Code Exchange (RFC 7636) with the S256 method, for the console's single sign-on.

The verifier is 43..128 characters of the unreserved alphabet (section 4.1); 48 random bytes in
base64url give 64. The challenge is BASE64URL(SHA-256(ASCII(verifier))) without padding (section 4.2):
only the challenge travels to the issuer in the browser's address bar, the verifier only in the
gateway's own request for the tokens, so an intercepted code cannot be redeemed without it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

VERIFIER_BYTES = 48


def new_verifier() -> str:
    """A fresh code verifier.

    >>> v = new_verifier()
    >>> len(v), set(v) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    (64, True)
    """
    return secrets.token_urlsafe(VERIFIER_BYTES)


def s256_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier`` (the example of RFC 7636 appendix B).

    >>> s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
    """
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def random_token() -> str:
    """An unguessable ``state`` or ``nonce`` value (128 bits and more)."""
    return secrets.token_urlsafe(24)
