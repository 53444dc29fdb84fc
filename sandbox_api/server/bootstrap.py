"""Initialise a deployment: state directory, keyring (0600), database schema, the first admin."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from crypto.errors import CryptoError
from crypto.key_provider import DeploymentKeys
from crypto.keyring import LocalKeyring
from crypto.profile import CryptoProfile, profile_named
from sandbox_api.clock import Clock, SystemClock
from sandbox_api.roles import Role
from sandbox_api.server.services.audit import SYSTEM_ACTOR, AuditLog
from sandbox_api.server.services.principals import PrincipalService
from sandbox_api.server.settings import PKCS11_PIN_VARIABLE, Settings
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import Database, open_database


@dataclass(frozen=True)
class InitResult:
    admin_token: str | None
    created: bool


def _provider_marker(settings: Settings) -> Path:
    # Written by init: which key store the deployment chose, so a start with the other one is refused
    # rather than silently making a second set of keys.
    return settings.state_dir / "key_provider"


def deployment_initialised(settings: Settings) -> bool:
    """Whether ``sandbox init`` ran for this state directory; :class:`CryptoError` if it ran with the
    other key store (a local deployment has its keyring file, a PKCS#11 one the marker init wrote)."""
    marker = _provider_marker(settings)
    if marker.exists():
        chosen: str | None = marker.read_text(encoding="utf-8").strip()
    else:
        chosen = "local" if settings.keyring_path.exists() else None
    if chosen is not None and chosen != settings.key_provider:
        raise CryptoError(
            f"the deployment in {settings.state_dir} was initialised with key_provider {chosen}, "
            f"not {settings.key_provider}; its keys are there"
        )
    return chosen is not None


def token_pin(settings: Settings) -> str:
    """The token's user PIN: from ``pkcs11_pin_file``, else the environment (never from settings)."""
    if settings.pkcs11_pin_file is not None:
        return settings.pkcs11_pin_file.read_text(encoding="utf-8").strip()
    pin = os.environ.get(PKCS11_PIN_VARIABLE)
    if not pin:
        raise CryptoError(
            f"key_provider pkcs11 needs the token PIN: set pkcs11_pin_file or {PKCS11_PIN_VARIABLE}"
        )
    return pin


def open_keys(settings: Settings, *, clock: Clock, create: bool = False) -> DeploymentKeys:
    """The deployment's key store: the local keyring (default) or the PKCS#11 token the settings name.
    ``create`` (init only) makes the keyring file if it is missing."""
    profile = profile_named(settings.crypto_profile)
    if settings.key_provider == "local":
        return LocalKeyring.open(
            settings.keyring_path, create=create, clock=clock.now, new_kek=profile.aead.new_key
        )
    # Imported here so that a deployment on the local keyring never loads the PKCS#11 module.
    from crypto.pkcs11_provider import Pkcs11KeyProvider, require_profile

    require_profile(profile.name)
    assert settings.pkcs11_library is not None  # both checked by Settings._check_key_provider
    assert settings.pkcs11_token_label is not None
    return Pkcs11KeyProvider.open(
        settings.pkcs11_library, token_label=settings.pkcs11_token_label, pin=token_pin(settings)
    )


def deployment_profile(settings: Settings, keys: DeploymentKeys, *, clock: Clock) -> CryptoProfile:
    """The profile the settings name, once the keyring's signing key is known to be of that profile
    (created here, of the profile's algorithm, if there is none yet); :class:`CryptoError` otherwise."""
    profile = profile_named(settings.crypto_profile)
    profile.require_signer(keys.ensure_signing_key(now=clock.now(), algorithm=profile.signature))
    return profile


def open_audit_log(settings: Settings, *, db: Database, keys: DeploymentKeys, clock: Clock) -> AuditLog:
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
    deployment_initialised(settings)  # refuses a key store other than the one init chose before
    keys = open_keys(settings, clock=clock, create=True)
    if settings.key_provider != "local":
        _provider_marker(settings).write_text(settings.key_provider + "\n", encoding="utf-8")
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
