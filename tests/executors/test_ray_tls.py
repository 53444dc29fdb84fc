"""TLS for Ray's own traffic, on a real cluster started with the commands ``sandbox cluster`` generates.

A certificate authority is made at test time; one node certificate (valid for this machine's address,
for both server and client authentication) is given to every Ray process through ``RayTls``. The head
and a worker of ``health-bureau`` are started with ``head_command`` and ``worker_command`` exactly as
generated (their environment untouched: TLS and Ray's token authentication, the token given in the
environment), a driver in its own process with the same environment runs a job through ``RayExecutor``,
and clients without a certificate from the authority get nothing from the cluster.

Each node runs ``ray start --block`` in a session of its own, so the test stops exactly its own Ray
processes (the process group) and no other Ray on the machine; ``ray stop`` would stop them all.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pytest
import ray.util

from crypto.keyring import LocalKeyring
from executors.local import LocalExecutor
from executors.ray_cluster import NodeCommand, RayTls, head_command, worker_command
from tests.executors.executors_contract import AGGREGATE, spec
from tests.executors.executors_fixtures import StoredVersion, store_version, visits_table
from tests.sandbox_api.live_gateway import free_port
from tests.sandbox_api.local_ca import Issued, LocalCA

pytestmark = pytest.mark.slow

HEALTH = "health-bureau"
OBJECT_STORE = 80 * 2**20
REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
# What a client writes first on an HTTP/2 (gRPC) connection: the preface and an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
H2_SETTINGS = 4


@dataclass(frozen=True)
class TlsCluster:
    host: str
    port: int
    tls: RayTls
    node: Issued
    rogue: LocalCA
    rogue_node: Issued
    keyring: Path
    root: Path
    token: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def env(self, *, tls: RayTls | None) -> dict[str, str]:
        """The environment of a Ray process of this test: no Ray settings inherited from the test
        process, Ray's files under the test's directory, and ``tls`` if given."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        # Ray's Unix socket names must fit in 107 bytes: a short directory under /tmp.
        env["RAY_TMPDIR"] = str(self.root)
        # Ray's token authentication, as the generated commands and a deployment's gateway have it; the
        # token comes from the environment, so Ray writes none under the home directory.
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        return env | (tls.env() if tls is not None else {})


def _start(command: NodeCommand, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    assert command.argv[0] == "ray"
    # The generated command as it is, plus what a test needs: a small object store, no usage report,
    # and a foreground process that owns its node's processes.
    argv = [RAY, *command.argv[1:], "--object-store-memory", str(OBJECT_STORE)]
    argv += ["--block"]
    node_env = {**env, **command.env}
    return subprocess.Popen(
        argv,
        env=node_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()
            time.sleep(0.2)
    process.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _h2_answer(host: str, port: int, context: ssl.SSLContext | None) -> bytes:
    """What the server at ``host:port`` answers to an HTTP/2 preface, over TLS with ``context`` or in
    plain text; empty when it closes the connection or refuses the handshake."""
    with socket.create_connection((host, port), timeout=10) as raw:
        try:
            if context is None:
                raw.sendall(H2_PREFACE)
                return raw.recv(64)
            with context.wrap_socket(raw, server_hostname=host) as wrapped:
                wrapped.sendall(H2_PREFACE)
                return wrapped.recv(64)
        except (ssl.SSLError, ConnectionError):
            return b""


def _client_context(ca: Path, identity: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    if identity is not None:
        context.load_cert_chain(identity.cert, identity.key)
    return context


def _wait_serving(cluster: TlsCluster, head: subprocess.Popen[bytes]) -> None:
    context = _client_context(Path(cluster.tls.ca), cluster.node)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"the head node exited with {head.returncode}")
        try:
            if _h2_answer(cluster.host, cluster.port, context):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the head node did not serve TLS within 120 s")


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[TlsCluster]:
    root = Path(tempfile.mkdtemp(prefix="sbxtls-", dir="/tmp"))
    # Ray binds and dials the node's own address (never 127.0.0.1), so its certificate names it.
    host = ray.util.get_node_ip_address()
    ca, rogue = LocalCA(root / "ca"), LocalCA(root / "rogue", name="Rogue CA")
    node = ca.issue("ray-node", server=True, client=True, ips=[host])
    keyring = root / f"{HEALTH}.keyring.json"
    LocalKeyring.open(keyring, create=True).ensure_domain(HEALTH)
    cluster = TlsCluster(
        host=host,
        port=free_port(),
        tls=RayTls(ca=str(ca.cert), cert=str(node.cert), key=str(node.key)),
        node=node,
        rogue=rogue,
        rogue_node=rogue.issue("intruder", server=True, client=True, ips=[host]),
        keyring=keyring,
        root=root,
        token=secrets.token_hex(32),
    )
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        env = cluster.env(tls=None)
        nodes.append(_start(head_command(port=cluster.port, num_cpus=0, tls=cluster.tls), env))
        _wait_serving(cluster, nodes[0])
        worker = worker_command(
            address=cluster.address, domains=[HEALTH], keyring=str(keyring), num_cpus=1, tls=cluster.tls
        )
        nodes.append(_start(worker, env))
        yield cluster
    finally:
        for process in reversed(nodes):
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stored(tls_cluster: TlsCluster, data_root: Path) -> StoredVersion:
    keyring = LocalKeyring.open(tls_cluster.keyring)
    stored = store_version(
        data_root, keyring, {"visits": visits_table()}, units={"visits": "person_id"}, n_parts=2
    )
    # With the unit known, the job is one task per part and a merge: sealed partials cross the cluster.
    inputs = {name: replace(table, unit="person_id") for name, table in stored.inputs.items()}
    return replace(stored, inputs=inputs)


def test_a_job_runs_on_a_cluster_whose_traffic_is_tls(tls_cluster: TlsCluster, stored: StoredVersion) -> None:
    job = spec(stored, AGGREGATE, job_id="tls-aggregate")
    job_path, result_path = tls_cluster.root / "job.pkl", tls_cluster.root / "result.arrow"
    job_path.write_bytes(pickle.dumps(job))
    driver = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.executors.ray_tls_driver",
            tls_cluster.address,
            str(job_path),
            str(result_path),
        ],
        cwd=REPO,
        env=tls_cluster.env(tls=tls_cluster.tls),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    with pa.ipc.open_stream(result_path.read_bytes()) as reader:
        over_tls = reader.read_all()
    local = LocalExecutor(key_provider=LocalKeyring.open(tls_cluster.keyring), max_workers=1)
    try:
        expected = local.run(job).to_arrow()
    finally:
        local.close()
    assert over_tls.num_rows == 5
    assert over_tls.to_pylist() == expected.to_pylist()


def test_the_cluster_answers_only_a_client_with_a_certificate_from_its_authority(
    tls_cluster: TlsCluster,
) -> None:
    host, port, ca = tls_cluster.host, tls_cluster.port, Path(tls_cluster.tls.ca)
    granted = _h2_answer(host, port, _client_context(ca, tls_cluster.node))
    assert granted[3] == H2_SETTINGS  # the gRPC server's first frame: it accepted the client
    assert _h2_answer(host, port, None) == b""  # plain text
    assert _h2_answer(host, port, _client_context(ca, None)) == b""  # TLS without a certificate
    assert _h2_answer(host, port, _client_context(ca, tls_cluster.rogue_node)) == b""  # another authority


def test_a_client_that_trusts_another_authority_refuses_the_clusters_certificate(
    tls_cluster: TlsCluster,
) -> None:
    context = _client_context(tls_cluster.rogue.cert, tls_cluster.rogue_node)
    with (
        socket.create_connection((tls_cluster.host, tls_cluster.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname=tls_cluster.host).close()


def test_a_ray_driver_without_the_tls_settings_cannot_connect(tls_cluster: TlsCluster) -> None:
    code = (
        "import ray\n"
        f"ray.init(address={tls_cluster.address!r}, log_to_driver=False)\n"
        "print('connected', flush=True)\n"
    )
    env = tls_cluster.env(tls=None)
    # Ray keeps retrying a GCS it cannot reach rather than failing: give it 20 s, then stop it.
    with subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as plain:
        try:
            out, err = plain.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(plain.pid, signal.SIGKILL)
            out, err = plain.communicate()
    assert b"connected" not in out
    assert b"Failed to connect to GCS" in err
