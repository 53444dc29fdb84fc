"""Console sessions: a sealed cookie that holds the bearer token, and the CSRF token derived from it.

The cookie is AES-256-GCM sealed under a keyring secret (``console-session``), so the browser holds
neither the token in clear nor anything it could forge. Every request opens the cookie and
authenticates its token again through the principal service: revoking a principal's tokens ends their
console sessions at once, exactly as it ends their API access.

A session carries a random ``nonce``; the CSRF token is an HMAC of that nonce under a second secret. A
signed-out visitor gets an anonymous session too (no token), so the sign-in form is protected as well,
and signing in issues a fresh nonce (no session fixation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete

from crypto.envelope import seal, unseal
from crypto.errors import CryptoError
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import ConsoleSignOutRow

COOKIE = "__Host-sbx_console"
LANG_COOKIE = "__Host-sbx_lang"
# A sign-in by redirect in progress. Its own cookie, SameSite=Lax: the issuer sends the browser back with
# a cross-site navigation, on which a browser withholds the Strict session cookie (RFC 6265bis 5.6.7.1).
FLOW_COOKIE = "__Host-sbx_sso"
SESSION_AAD = b"console-session/v1"
FLOW_AAD = b"console-sso-flow/v1"
SESSION_HOURS = 8
FLOW_SECONDS = 600


@dataclass(frozen=True)
class Flow:
    """What a sign-in by redirect must find again when the issuer sends the browser back: the ``state``
    it sent, the ``nonce`` the ID token must carry and the PKCE verifier, sealed like a session."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    expires: float


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: float  # UNIX seconds
    token: str | None = None  # None: signed out

    @property
    def signed_in(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class SessionKeys:
    """The two console secrets: one seals cookies, one derives CSRF tokens."""

    seal_key: bytes
    csrf_key: bytes

    def new_session(self, *, now: float, token: str | None = None) -> Session:
        return Session(nonce=secrets.token_urlsafe(18), expires=now + SESSION_HOURS * 3600, token=token)

    def dump(self, session: Session) -> str:
        payload = json.dumps({"n": session.nonce, "e": session.expires, "t": session.token}).encode()
        return base64.urlsafe_b64encode(seal(self.seal_key, payload, aad=SESSION_AAD)).decode("ascii")

    def load(self, cookie: str | None, *, now: float) -> Session | None:
        """The session in ``cookie``, or None when absent, tampered with, sealed under another key or
        expired."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            raw = unseal(self.seal_key, base64.urlsafe_b64decode(cookie.encode("ascii")), aad=SESSION_AAD)
            data = json.loads(raw)
            session = Session(nonce=str(data["n"]), expires=float(data["e"]), token=data["t"])
        except (CryptoError, ValueError, KeyError, TypeError):
            return None
        return session if session.expires > now else None

    def dump_flow(self, flow: Flow) -> str:
        payload = json.dumps(
            {"s": flow.state, "n": flow.nonce, "v": flow.verifier, "r": flow.redirect_uri, "e": flow.expires}
        ).encode()
        return base64.urlsafe_b64encode(seal(self.seal_key, payload, aad=FLOW_AAD)).decode("ascii")

    def load_flow(self, cookie: str | None, *, now: float) -> Flow | None:
        """The flow in ``cookie``; None when absent, tampered with, a session cookie or expired."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            raw = unseal(self.seal_key, base64.urlsafe_b64decode(cookie.encode("ascii")), aad=FLOW_AAD)
            data = json.loads(raw)
            flow = Flow(
                state=str(data["s"]),
                nonce=str(data["n"]),
                verifier=str(data["v"]),
                redirect_uri=str(data["r"]),
                expires=float(data["e"]),
            )
        except (CryptoError, ValueError, KeyError, TypeError):
            return None
        return flow if flow.expires > now else None

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self.csrf_key, session.nonce.encode("ascii"), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            self.csrf_token(session).encode("ascii"), presented.encode("ascii", "replace")
        )


class SignedOut:
    """Sessions signed out before they expired: a copied cookie stops working at sign-out, on every
    gateway process.

    Each sign-out is kept here and, when the console has a database, in ``console_signouts`` (the
    SHA-256 of the session's nonce and when the session would have expired), so that every gateway on
    the same database refuses the copy too. A session that is signed in is looked up by its primary key
    on each request; anonymous sessions (no token) are never looked up: they hold nothing to revoke.
    Rows past their expiry are removed at the next sign-out.
    """

    def __init__(self, db: Database | None = None) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def add(self, session: Session) -> None:
        with self._lock:
            self._until[session.nonce] = session.expires
        if self._db is None:
            return
        expires = datetime.fromtimestamp(session.expires, tz=UTC)
        with self._db.write() as db_session:
            db_session.execute(
                delete(ConsoleSignOutRow).where(ConsoleSignOutRow.expires_at <= datetime.now(tz=UTC))
            )
            db_session.merge(ConsoleSignOutRow(nonce_sha256=_digest(session.nonce), expires_at=expires))

    def __contains__(self, session: object) -> bool:
        if not isinstance(session, Session):
            return False
        now = time.time()
        with self._lock:
            for nonce in [n for n, until in self._until.items() if until <= now]:
                del self._until[nonce]
            if session.nonce in self._until:
                return True
        if self._db is None or not session.signed_in:
            return False
        with self._db.read() as db_session:
            return db_session.get(ConsoleSignOutRow, _digest(session.nonce)) is not None


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()
