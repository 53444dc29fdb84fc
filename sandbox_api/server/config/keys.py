"""Keys and transport: the crypto profile, the key provider (local keyring or PKCS#11), TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

#: The environment variable the gateway reads the token PIN from (``key_provider: pkcs11``): never a
#: setting, so that a settings file can never hold it.
PKCS11_PIN_VARIABLE = "SANDBOX_PKCS11_PIN"


class KeySettings(BaseSettings):
    """One part of ``Settings`` (``server/settings.py``)."""

    crypto_profile: Literal["international", "gm"] = Field(
        "international",
        description=(
            "Algorithms of the deployment, chosen at `sandbox init` and fixed after it: `international` "
            "(SHA-256, AES-256-GCM, Ed25519) or `gm` (SM3, SM4-GCM, SM2; the Chinese national algorithms)."
            " `init` creates the signing key of the profile; a server started with the other profile "
            "refuses to start. See docs/security.md."
        ),
    )
    key_provider: Literal["local", "pkcs11"] = Field(
        "local",
        description=(
            "Where the deployment's keys live, chosen at `sandbox init` and fixed after it: `local` (the "
            "keyring file in the state directory) or `pkcs11` (a hardware token: the domain key-encryption "
            "keys and the signing key are made in it and never leave it). `pkcs11` needs the "
            "`international` profile and the `local` executor. See docs/security.md."
        ),
    )
    pkcs11_library: str | None = Field(
        None,
        description=("The token's PKCS#11 module (a shared library path), with `key_provider: pkcs11`."),
    )
    pkcs11_token_label: str | None = Field(
        None,
        description=("The label of the token that holds the deployment's keys, with `key_provider: pkcs11`."),
    )
    pkcs11_pin_file: Path | None = Field(
        None,
        description=(
            "A file holding the token's user PIN (readable by the service only); otherwise the PIN comes "
            f"from the `{PKCS11_PIN_VARIABLE}` environment variable. Never put the PIN itself in settings."
        ),
    )
    tls_cert_file: Path | None = Field(
        None,
        description=(
            "Certificate chain (PEM) `sandbox serve` presents. With `tls_key_file` the gateway speaks "
            "HTTPS only (protocol versions and ciphers: the system OpenSSL's defaults); unset: plain "
            "HTTP, for loopback or behind a TLS proxy."
        ),
    )
    tls_key_file: Path | None = Field(
        None,
        description="Private key (PEM) of `tls_cert_file`; keep it readable by the gateway's user only.",
    )
    tls_client_ca_file: Path | None = Field(
        None,
        description=(
            "Certificate authorities (PEM) that client certificates must chain to, with `tls_client_cert`."
        ),
    )
    tls_client_cert: Literal["none", "optional", "required"] = Field(
        "none",
        description=(
            "Client certificates at the TLS handshake: `none`; `optional` (checked against "
            "`tls_client_ca_file` when sent); `required` (a client without one from that authority "
            "cannot connect: for gateways only executors, nodes and known machines reach). A bearer "
            "token is still needed on top."
        ),
    )
