"""TLS for ``sandbox serve``: the settings turned into the options of the HTTP server (uvicorn).

uvicorn builds the server's context from these options (``ssl.SSLContext`` with
``PROTOCOL_TLS_SERVER``, the system OpenSSL's defaults for versions and ciphers); a client certificate,
when asked for, must chain to ``tls_client_ca_file``. Files are checked here, at start-up, so a typo in a
path stops the gateway with a message instead of a handshake failure for every client.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from sandbox_api.errors import InvalidInput
from sandbox_api.server.settings import Settings

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _readable(setting: str, path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"{setting}: {path} is not a readable file")
    return str(path)


def server_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` for the settings' TLS; empty when TLS is off."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": _readable("tls_cert_file", settings.tls_cert_file),
        "ssl_keyfile": _readable("tls_key_file", settings.tls_key_file),
        "ssl_cert_reqs": _CERT_REQS[settings.tls_client_cert],
    }
    if settings.tls_client_ca_file is not None:
        options["ssl_ca_certs"] = _readable("tls_client_ca_file", settings.tls_client_ca_file)
    # Refuse the context now rather than at the first handshake (a key that does not match, a bad PEM).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options["ssl_certfile"], options["ssl_keyfile"])
        if "ssl_ca_certs" in options:
            context.load_verify_locations(options["ssl_ca_certs"])
    except (ssl.SSLError, OSError) as exc:
        raise InvalidInput(f"the TLS certificate, key or client authority cannot be loaded: {exc}") from exc
    return options


def scheme(settings: Settings) -> str:
    return "https" if settings.tls_cert_file is not None else "http"
