"""Initialise a deployment: state directory, keyring (0600), database schema, the first admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from crypto.keyring import LocalKeyring
from crypto.profile import CryptoProfile, profile_named
from sandbox_api.clock import Clock, SystemClock
from sandbox_api.roles import Role
from sandbox_api.server.services.audit import SYSTEM_ACTOR, AuditLog
from sandbox_api.server.services.principals import PrincipalService
from sandbox_api.server.settings import Settings
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import Database, open_database


@dataclass(frozen=True)
class InitResult:
    admin_token: str | None
    created: bool


def deployment_profile(settings: Settings, keys: LocalKeyring, *, clock: Clock) -> CryptoProfile:
    """The profile the settings name, once the keyring's signing key is known to be of that profile
    (created here, of the profile's algorithm, if there is none yet); :class:`CryptoError` otherwise."""
    profile = profile_named(settings.crypto_profile)
    profile.require_signer(keys.ensure_signing_key(now=clock.now(), algorithm=profile.signature))
    return profile


def open_audit_log(settings: Settings, *, db: Database, keys: LocalKeyring, clock: Clock) -> AuditLog:
    """The deployment's audit log, checkpointed and signed as the settings say (one place builds it)."""
    profile = deployment_profile(settings, keys, clock=clock)
    return AuditLog(
        db=db,
        clock=clock,
        checkpoint_every=settings.audit_checkpoint_every,
        checkpoint_minutes=settings.audit_checkpoint_minutes,
        read_flush_ms=settings.audit_read_flush_ms,
        read_flush_events=settings.audit_read_flush_events,
        signing_key=lambda: keys.ensure_signing_key(now=clock.now(), algorithm=profile.signature),
        profile=profile,
    )


def init_deployment(
    settings: Settings, *, admin_name: str = "admin", clock: Clock | None = None
) -> InitResult:
    """Create what is missing; a second call changes nothing and returns ``admin_token=None``."""
    clock = clock or SystemClock()
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    chosen = profile_named(settings.crypto_profile)
    keys = LocalKeyring.open(settings.keyring_path, create=True, clock=clock.now, new_kek=chosen.aead.new_key)
    profile = deployment_profile(settings, keys, clock=clock)
    db = open_database(settings.resolved_database_url)
    try:
        migrate.upgrade(db)
        audit = open_audit_log(settings, db=db, keys=keys, clock=clock)
        principals = PrincipalService(
            db=db,
            audit=audit,
            clock=clock,
            keys=keys,
            token_ttl=timedelta(days=settings.token_ttl_days),
            token_max_ttl=timedelta(days=settings.token_max_ttl_days),
        )
        with db.write() as session:
            if principals.any_principal(session):
                return InitResult(admin_token=None, created=False)
            audit.append(
                session,
                event="deployment.initialised",
                actor=SYSTEM_ACTOR,
                details={
                    "database": db.engine.dialect.name,
                    "executor": settings.executor,
                    "crypto_profile": profile.name,
                },
            )
            _, token = principals.create_principal(
                session, actor=SYSTEM_ACTOR, name=admin_name, role=Role.ADMIN, domain=None, groups=()
            )
            return InitResult(admin_token=token.secret, created=True)
    finally:
        db.dispose()
