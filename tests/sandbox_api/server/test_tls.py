"""``sandbox serve`` over TLS, with and without client certificates, against an authority made here.

The gateway runs as a real subprocess (uvicorn's TLS, not a test double); the clients are the package's
own client and CLI, configured the way a deployment configures them.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sandbox_api.cli.main import app
from sandbox_api.client.api_client import ClientError, SandboxClient
from sandbox_api.client.tls import client_context
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings
from tests.sandbox_api.live_gateway import free_port
from tests.sandbox_api.local_ca import Issued, LocalCA

runner = CliRunner()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | Issued | LocalCA]:
    root = tmp_path_factory.mktemp("pki")
    ca, rogue = LocalCA(root / "ca"), LocalCA(root / "rogue", name="Rogue CA")
    return {
        "ca": ca,
        "server": ca.issue("gateway", server=True),
        "client": ca.issue("ray-node-1", server=False),
        "rogue_client": rogue.issue("intruder", server=False),
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    state = tmp_path_factory.mktemp("tls-state") / "state"
    token = init_deployment(Settings(state_dir=state)).admin_token
    assert token is not None
    return state, token


def _server_env(pki: dict[str, Path | Issued | LocalCA], *, client_cert: str) -> dict[str, str]:
    server, ca = pki["server"], pki["ca"]
    assert isinstance(server, Issued)
    assert isinstance(ca, LocalCA)
    env = {"SANDBOX_TLS_CERT_FILE": str(server.cert), "SANDBOX_TLS_KEY_FILE": str(server.key)}
    if client_cert != "none":
        env |= {"SANDBOX_TLS_CLIENT_CA_FILE": str(ca.cert), "SANDBOX_TLS_CLIENT_CERT": client_cert}
    return env


@contextmanager
def tls_gateway(state: Path, env: dict[str, str], probe: ssl.SSLContext) -> Iterator[str]:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | env
    command = [
        sys.executable,
        "-m",
        "sandbox_api.cli",
        "serve",
        "--state-dir",
        str(state),
        "--port",
        str(port),
    ]
    with subprocess.Popen(command, env=clean, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the gateway exited: {process.stderr.read() if process.stderr else ''!r}"
                    )
                try:
                    if httpx.get(f"{url}/v1/health", verify=probe, timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _ca(pki: dict[str, Path | Issued | LocalCA]) -> Path:
    ca = pki["ca"]
    assert isinstance(ca, LocalCA)
    return ca.cert


def _issued(pki: dict[str, Path | Issued | LocalCA], name: str) -> Issued:
    issued = pki[name]
    assert isinstance(issued, Issued)
    return issued


# --- server authentication only --------------------------------------------------------------------


@pytest.fixture(scope="module")
def https(pki: dict[str, Path | Issued | LocalCA], deployment: tuple[Path, str]) -> Iterator[str]:
    probe = client_context(ca_bundle=_ca(pki))
    with tls_gateway(deployment[0], _server_env(pki, client_cert="none"), probe) as url:
        yield url


def test_a_client_trusting_the_deployments_authority_gets_in(
    https: str, pki: dict[str, Path | Issued | LocalCA], deployment: tuple[Path, str]
) -> None:
    with SandboxClient(https, deployment[1], tls=client_context(ca_bundle=_ca(pki))) as client:
        assert client.whoami().name == "admin"


def test_a_client_that_does_not_trust_the_authority_refuses_the_gateway(
    https: str, deployment: tuple[Path, str]
) -> None:
    with (
        SandboxClient(https, deployment[1]) as client,
        pytest.raises(ClientError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.whoami()


def test_plain_http_gets_nothing_from_a_tls_gateway(https: str) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(https.replace("https://", "http://") + "/v1/health", timeout=5)


def test_the_cli_trusts_the_authority_named_by_its_environment(
    https: str, pki: dict[str, Path | Issued | LocalCA], deployment: tuple[Path, str]
) -> None:
    args = ["whoami", "--url", https, "--token", deployment[1], "--json"]
    trusted = runner.invoke(app, args, env={"SANDBOX_CA_BUNDLE": str(_ca(pki))})
    assert trusted.exit_code == 0, trusted.output
    assert '"admin"' in trusted.stdout
    untrusted = runner.invoke(app, args, env={"SANDBOX_CA_BUNDLE": ""})
    assert untrusted.exit_code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.output


# --- client certificates required -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mutual(pki: dict[str, Path | Issued | LocalCA], deployment: tuple[Path, str]) -> Iterator[str]:
    node = _issued(pki, "client")
    probe = client_context(ca_bundle=_ca(pki), cert=node.cert, key=node.key)
    with tls_gateway(deployment[0], _server_env(pki, client_cert="required"), probe) as url:
        yield url


def test_a_client_certificate_from_the_authority_gets_in(
    mutual: str, pki: dict[str, Path | Issued | LocalCA], deployment: tuple[Path, str]
) -> None:
    node = _issued(pki, "client")
    tls = client_context(ca_bundle=_ca(pki), cert=node.cert, key=node.key)
    with SandboxClient(mutual, deployment[1], tls=tls) as client:
        assert client.whoami().name == "admin"


@pytest.mark.parametrize("certificate", [None, "rogue_client"])
def test_no_client_certificate_or_one_from_another_authority_cannot_connect(
    mutual: str,
    pki: dict[str, Path | Issued | LocalCA],
    deployment: tuple[Path, str],
    certificate: str | None,
) -> None:
    cert = None if certificate is None else _issued(pki, certificate)
    tls = client_context(
        ca_bundle=_ca(pki), cert=None if cert is None else cert.cert, key=None if cert is None else cert.key
    )
    with SandboxClient(mutual, deployment[1], tls=tls) as client, pytest.raises(ClientError) as refused:
        client.whoami()
    assert refused.value.code == "unreachable"


def test_the_certificate_alone_is_not_enough_a_token_is_still_needed(
    mutual: str, pki: dict[str, Path | Issued | LocalCA]
) -> None:
    node = _issued(pki, "client")
    tls = client_context(ca_bundle=_ca(pki), cert=node.cert, key=node.key)
    with SandboxClient(mutual, "sbx_not-a-token", tls=tls) as client, pytest.raises(ClientError) as refused:
        client.whoami()
    assert refused.value.status == 401


# --- configuration --------------------------------------------------------------------------------------


def test_serve_refuses_a_key_that_does_not_match_its_certificate(
    pki: dict[str, Path | Issued | LocalCA], deployment: tuple[Path, str]
) -> None:
    env = {
        "SANDBOX_TLS_CERT_FILE": str(_issued(pki, "server").cert),
        "SANDBOX_TLS_KEY_FILE": str(_issued(pki, "client").key),
    }
    result = runner.invoke(
        app, ["serve", "--state-dir", str(deployment[0]), "--port", str(free_port())], env=env
    )
    assert result.exit_code == 1
    assert "cannot be loaded" in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_cert_file": "/x.pem"}, "both"),
        ({"tls_client_cert": "required", "tls_client_ca_file": "/ca.pem"}, "TLS on"),
        (
            {"tls_cert_file": "/x.pem", "tls_key_file": "/x.key", "tls_client_cert": "optional"},
            "tls_client_ca_file",
        ),
    ],
)
def test_incomplete_tls_settings_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**overrides)  # type: ignore[arg-type]
