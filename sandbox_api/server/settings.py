"""Deployment settings: one pydantic-settings class, read only when constructed (never at import)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from sandbox_api.roles import Role
from sandbox_api.server.config.deployment import DeploymentSettings
from sandbox_api.server.config.governance import GovernanceSettings
from sandbox_api.server.config.identity import IdentitySettings
from sandbox_api.server.config.jobs import JobSettings
from sandbox_api.server.config.keys import PKCS11_PIN_VARIABLE as PKCS11_PIN_VARIABLE
from sandbox_api.server.config.keys import KeySettings
from sandbox_api.server.config.observability import ObservabilitySettings

#: JWT signature algorithms single sign-on may accept: public-key ones only (RFC 7518 section 3, RFC 8037).
ASYMMETRIC_JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

#: ``SANDBOX_`` variables that are not deployment settings: the CLI and the client read them (the
#: gateway's address, a bearer token, the authority to trust and a client certificate), the Ray node
#: launcher reads the node keyring's path; the gateway reads the token PIN (``key_provider: pkcs11``) from
#: :data:`PKCS11_PIN_VARIABLE`, deliberately no setting so that a settings file can never hold it.
CLIENT_VARIABLES = frozenset(
    {
        PKCS11_PIN_VARIABLE,
        "SANDBOX_URL",
        "SANDBOX_TOKEN",
        "SANDBOX_NODE_KEYRING",
        "SANDBOX_CA_BUNDLE",
        "SANDBOX_CLIENT_CERT",
        "SANDBOX_CLIENT_KEY",
    }
)

# Passwords that show up in tutorials and templates: a production deployment must not run with them.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "password", "secret", "example", "placeholder", "admin"}
)


class Settings(
    ObservabilitySettings, IdentitySettings, GovernanceSettings, KeySettings, JobSettings, DeploymentSettings
):
    """Every knob of a deployment, assembled from one class per area (``server/config/``), and the rules
    that span areas. Documented one by one in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="forbid")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.dev_mode or self.database_url is None:
            return self
        password = urlsplit(self.database_url).password
        if password is not None and password.lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "SANDBOX_DATABASE_URL uses a placeholder password; set a real one or enable SANDBOX_DEV_MODE"
            )
        return self

    @model_validator(mode="after")
    def _check_key_provider(self) -> Settings:
        if self.key_provider != "pkcs11":
            return self
        if not self.pkcs11_library or not self.pkcs11_token_label:
            raise ValueError("key_provider pkcs11 needs pkcs11_library and pkcs11_token_label")
        if self.crypto_profile != "international":
            raise ValueError(
                "key_provider pkcs11 serves the international profile only (no SM4/SM2 in PKCS#11)"
            )
        if self.executor != "local":
            raise ValueError("key_provider pkcs11 needs the local executor (Ray nodes read a keyring file)")
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both tls_cert_file and tls_key_file (or neither)")
        if self.tls_client_cert != "none" and (self.tls_cert_file is None or self.tls_client_ca_file is None):
            raise ValueError(
                "tls_client_cert needs TLS on (tls_cert_file, tls_key_file) and tls_client_ca_file"
            )
        return self

    @model_validator(mode="after")
    def _check_single_sign_on(self) -> Settings:
        for algorithm in self.oidc_algorithms:
            if algorithm not in ASYMMETRIC_JWT_ALGORITHMS:
                raise ValueError(
                    f"oidc_algorithms: {algorithm!r} is refused; use asymmetric ones: "
                    + ", ".join(sorted(ASYMMETRIC_JWT_ALGORITHMS))
                )
        roles = {r.value for r in Role}
        for value, role in self.oidc_role_map.items():
            if role not in roles:
                raise ValueError(f"oidc_role_map: {value!r} maps to {role!r}, which is no role")
        if self.oidc_issuer is None:
            return self
        if not self.oidc_audience or not self.oidc_jwks_url:
            raise ValueError("single sign-on (oidc_issuer) needs oidc_audience and oidc_jwks_url")
        for setting in ("oidc_jwks_url", "oidc_authorize_url", "oidc_token_url"):
            url = getattr(self, setting)
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme != "https" and parts.hostname not in {"127.0.0.1", "::1", "localhost"}:
                raise ValueError(f"{setting} must be https:// (plain http only on loopback)")
        if (self.oidc_authorize_url is None) != (self.oidc_token_url is None):
            raise ValueError("oidc_authorize_url and oidc_token_url go together (or neither: discovery)")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The metadata database: the configured URL, or SQLite inside the state directory."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'metadata.db').resolve()}"

    @property
    def keyring_path(self) -> Path:
        return self.state_dir / "keyring.json"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def upload_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_kb * 1024


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """The ``SANDBOX_`` variables of ``environ`` that name no setting (typos, removed settings).

    pydantic-settings ignores them silently; ``sandbox serve`` reports them at start-up instead.

    >>> unknown_environment({"SANDBOX_PORT": "8000", "SANDBOX_JOB_TIMEOUTS": "5", "HOME": "/root"})
    ['SANDBOX_JOB_TIMEOUTS']
    """
    known = {"SANDBOX_" + name.upper() for name in Settings.model_fields} | CLIENT_VARIABLES
    return sorted(k for k in environ if k.upper().startswith("SANDBOX_") and k.upper() not in known)


def settings_table() -> str:
    """The Markdown table of every setting (name, default, description), as docs/settings.md holds it.

    Generated from the fields themselves so the documentation cannot drift (a test compares them).

    >>> settings_table().splitlines()[2].startswith("| `state_dir` | `.sandbox-state` |")
    True
    """
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = (
            "unset"
            if default is None
            else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        )
        lines.append(f"| `{name}` | {shown} | {info.description or ''} |")
    return "\n".join(lines)
