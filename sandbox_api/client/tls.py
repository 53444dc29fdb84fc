"""The client's side of TLS: which authority to trust, and the client certificate to present.

The CLI reads ``SANDBOX_CA_BUNDLE`` (PEM of the authority that signed the gateway's certificate, for a
deployment with its own CA), ``SANDBOX_CLIENT_CERT`` and ``SANDBOX_CLIENT_KEY`` (for a gateway that asks
for client certificates). Without a bundle the system's trust store is used.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path


def client_context(
    *, ca_bundle: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A verifying client context (hostname and chain checked), optionally with a client certificate."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if ca_bundle is None else str(ca_bundle)
    )
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def context_from_environment(environ: Mapping[str, str]) -> ssl.SSLContext | None:
    """The context the ``SANDBOX_CA_BUNDLE`` / ``SANDBOX_CLIENT_CERT`` / ``SANDBOX_CLIENT_KEY`` variables
    describe, or None when none is set (the HTTP library's defaults apply)."""
    ca_bundle, cert, key = (environ.get(f"SANDBOX_{n}") for n in ("CA_BUNDLE", "CLIENT_CERT", "CLIENT_KEY"))
    if not (ca_bundle or cert or key):
        return None
    return client_context(
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        cert=Path(cert) if cert else None,
        key=Path(key) if key else None,
    )
