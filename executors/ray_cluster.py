"""What a Ray deployment needs without importing Ray: domain resources, node key sources, and the
``ray start`` command lines for a head node and for the worker nodes of a domain.

A node serves a domain when it carries the custom resource ``domain:<name>``; every task of a job on
that domain's data asks for a sliver of it, so Ray places the task only on such nodes (docs/design.md §7). The
data keys of a domain are unwrapped on the node, with the node's own key provider, so a node can only
read the domains whose key-encryption keys its keyring holds (docs/design.md §9).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from crypto.keyring import KeyProvider, LocalKeyring
from executors.errors import DataUnavailable, ExecutionFailed

DOMAIN_RESOURCE_PREFIX = "domain:"
# A task asks for this much of its domain's resource: the resource marks where a task may run; CPUs,
# not the domain resource, bound how many run at once.
DOMAIN_SHARE = 0.001
NODE_KEYRING_ENV = "SANDBOX_NODE_KEYRING"
_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def domain_resource(domain: str) -> str:
    """The Ray custom resource that marks the nodes of ``domain``.

    >>> domain_resource("health-bureau")
    'domain:health-bureau'
    """
    if not _DOMAIN_NAME.match(domain):
        raise ExecutionFailed(f"{domain!r} is not a valid domain name")
    return DOMAIN_RESOURCE_PREFIX + domain


class KeySource(Protocol):
    """A recipe for a key provider, opened on the worker node that runs the task.

    It travels to the node instead of the provider itself, so key material never crosses the cluster:
    a recipe names where the node finds its keys, never the keys.
    """

    def open(self) -> KeyProvider:
        """The node's key provider; raises ``DataUnavailable`` when the node has none."""
        ...


@dataclass(frozen=True)
class KeyringFile:
    """A local keyring file at ``path`` on the worker node."""

    path: str

    def open(self) -> KeyProvider:
        if not Path(self.path).is_file():
            raise DataUnavailable(f"this node has no keyring at {self.path}")
        return LocalKeyring.open(Path(self.path))


@dataclass(frozen=True)
class NodeKeyring:
    """The keyring file named by the node's environment variable ``env`` (set when the node is
    started): each node brings the keys of the domains it serves and no others."""

    env: str = NODE_KEYRING_ENV

    def open(self) -> KeyProvider:
        path = os.environ.get(self.env)
        if not path:
            raise DataUnavailable(
                f"this node has no key provider: {self.env} is not set where it was started"
            )
        return KeyringFile(path).open()


@dataclass(frozen=True)
class NodeCommand:
    """One command line (as arguments) and the environment it needs, for printing or running."""

    argv: tuple[str, ...]
    env: Mapping[str, str]

    def shell(self) -> str:
        """The command as one shell line.

        >>> NodeCommand(argv=("ray", "start", "--head"), env={"A": "b c"}).shell()
        "A='b c' ray start --head"
        """
        assigns = [f"{name}={shlex.quote(value)}" for name, value in sorted(self.env.items())]
        return " ".join([*assigns, *(shlex.quote(arg) for arg in self.argv)])


@dataclass(frozen=True)
class RayTls:
    """TLS for Ray's own traffic (gRPC between the head, the workers and the gateway's driver).

    Ray reads it from the environment of every Ray process (``RAY_USE_TLS`` and the ``RAY_TLS_*``
    variables of Ray's TLS guide) when the process starts: each node presents ``cert`` and trusts only
    ``ca``. The certificate must name the node's IP address (Ray binds and dials the node's own address,
    even when told 127.0.0.1) and allow both server and client authentication (Ray's gRPC TLS is mutual:
    the same certificate answers and calls). Every node and the gateway must use it together: a node or
    driver without TLS cannot join a cluster with it (tests/executors/test_ray_tls.py).
    """

    ca: str
    cert: str
    key: str

    def env(self) -> dict[str, str]:
        """
        >>> sorted(RayTls(ca="/ca.pem", cert="/node.pem", key="/node.key").env())
        ['RAY_TLS_CA_CERT', 'RAY_TLS_SERVER_CERT', 'RAY_TLS_SERVER_KEY', 'RAY_USE_TLS']
        """
        return {
            "RAY_USE_TLS": "1",
            "RAY_TLS_CA_CERT": self.ca,
            "RAY_TLS_SERVER_CERT": self.cert,
            "RAY_TLS_SERVER_KEY": self.key,
        }


def _resources(domains: Sequence[str], slots: int) -> str:
    return json.dumps({domain_resource(d): slots for d in domains}, sort_keys=True, separators=(",", ":"))


def head_command(
    *,
    port: int = 6379,
    num_cpus: int | None = None,
    domains: Sequence[str] = (),
    keyring: str | None = None,
    tls: RayTls | None = None,
) -> NodeCommand:
    """``ray start --head``: the cluster's head. It serves no domain unless ``domains`` says so, so
    by default no job's data is decrypted on it.

    >>> print(head_command(num_cpus=0).shell())  # doctest: +NORMALIZE_WHITESPACE
    RAY_AUTH_MODE=token ray start --head --port 6379 --include-dashboard false --disable-usage-stats
    --num-cpus 0 --resources '{}'
    """
    # No usage statistics leave the cluster: Ray would otherwise report them by default.
    argv = ["ray", "start", "--head", "--port", str(port), "--include-dashboard", "false"]
    argv += ["--disable-usage-stats"]
    if num_cpus is not None:
        argv += ["--num-cpus", str(num_cpus)]
    argv += ["--resources", _resources(domains, 1)]
    env = {"RAY_AUTH_MODE": "token", **(tls.env() if tls is not None else {})}
    if keyring is not None:
        env[NODE_KEYRING_ENV] = keyring
    return NodeCommand(argv=tuple(argv), env=env)


def worker_command(
    *,
    address: str,
    domains: Sequence[str],
    keyring: str,
    num_cpus: int | None = None,
    tls: RayTls | None = None,
) -> NodeCommand:
    """``ray start --address``: a worker node serving ``domains`` with the keyring at ``keyring``
    (which must hold those domains' keys and no others).

    >>> command = worker_command(address="10.0.0.1:6379", domains=["health-bureau"], keyring="/k.json")
    >>> command.argv[-2:]
    ('--resources', '{"domain:health-bureau":1}')
    >>> command.env["SANDBOX_NODE_KEYRING"]
    '/k.json'
    """
    if not domains:
        raise ExecutionFailed("a worker node must serve at least one domain")
    argv = ["ray", "start", "--address", address, "--disable-usage-stats"]
    if num_cpus is not None:
        argv += ["--num-cpus", str(num_cpus)]
    argv += ["--resources", _resources(domains, 1)]
    env = {"RAY_AUTH_MODE": "token", NODE_KEYRING_ENV: keyring, **(tls.env() if tls is not None else {})}
    return NodeCommand(argv=tuple(argv), env=env)
