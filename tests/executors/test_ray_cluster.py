"""Cluster helpers without Ray: domain resources, node key sources, the ``ray start`` command lines and
the ``sandbox cluster`` sub-command that prints them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crypto.keyring import LocalKeyring
from executors.errors import DataUnavailable, ExecutionFailed
from executors.ray_cluster import (
    NODE_KEYRING_ENV,
    KeyringFile,
    NodeKeyring,
    RayTls,
    domain_resource,
    head_command,
    worker_command,
)
from sandbox_api.cli.cluster import cluster_app


def test_domain_resource_refuses_names_that_could_smuggle_json() -> None:
    with pytest.raises(ExecutionFailed):
        domain_resource('a", "domain:b')


def test_worker_command_carries_each_domain_and_the_keyring() -> None:
    command = worker_command(
        address="10.0.0.1:6379", domains=["health", "tax"], keyring="/k/n.json", num_cpus=4
    )
    argv = list(command.argv)
    assert argv[:4] == ["ray", "start", "--address", "10.0.0.1:6379"]
    assert json.loads(argv[argv.index("--resources") + 1]) == {"domain:health": 1, "domain:tax": 1}
    assert argv[argv.index("--num-cpus") + 1] == "4"
    assert command.env == {"RAY_AUTH_MODE": "token", NODE_KEYRING_ENV: "/k/n.json"}
    assert shlex.split(command.shell())[2:] == argv


def test_a_worker_must_serve_a_domain() -> None:
    with pytest.raises(ExecutionFailed):
        worker_command(address="h:1", domains=[], keyring="/k")


def test_the_head_serves_no_domain_by_default() -> None:
    argv = list(head_command(num_cpus=0).argv)
    assert json.loads(argv[argv.index("--resources") + 1]) == {}
    assert argv[argv.index("--include-dashboard") + 1] == "false"


def test_node_keyring_without_its_variable_is_data_unavailable() -> None:
    with pytest.raises(DataUnavailable):
        NodeKeyring(env="SANDBOX_TEST_UNSET_VARIABLE_FOR_RAY").open()


def test_keyring_file_opens_only_an_existing_keyring(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable):
        KeyringFile(str(tmp_path / "missing.json")).open()
    path = tmp_path / "node.json"
    LocalKeyring.open(path, create=True).ensure_domain("health")
    assert KeyringFile(str(path)).open().ensure_domain("health")


def test_cluster_commands_prints_head_and_worker_lines() -> None:
    result = CliRunner().invoke(
        cluster_app,
        [
            "commands",
            "--domain",
            "health-bureau",
            "--keyring",
            "/etc/sandbox/health.json",
            "--address",
            "h:6379",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("#")]
    assert lines[0].endswith(
        "ray start --head --port 6379 --include-dashboard false --disable-usage-stats --num-cpus 0 "
        "--resources '{}'"
    )
    # No node reports usage statistics to Ray's servers.
    assert all("--disable-usage-stats" in line for line in lines[:2])
    assert "SANDBOX_NODE_KEYRING=/etc/sandbox/health.json" in lines[1]
    assert """--resources '{"domain:health-bureau":1}'""" in lines[1]


def test_cluster_commands_refuses_a_bad_domain() -> None:
    result = CliRunner().invoke(cluster_app, ["commands", "--domain", "../x", "--keyring", "/k"])
    assert result.exit_code == 2


def test_ray_tls_goes_into_every_nodes_environment() -> None:
    tls = RayTls(ca="/pki/ca.pem", cert="/pki/node.pem", key="/pki/node.key")
    expected = {
        "RAY_USE_TLS": "1",
        "RAY_TLS_CA_CERT": "/pki/ca.pem",
        "RAY_TLS_SERVER_CERT": "/pki/node.pem",
        "RAY_TLS_SERVER_KEY": "/pki/node.key",
    }
    head = head_command(num_cpus=0, tls=tls)
    worker = worker_command(address="h:1", domains=["health"], keyring="/k", tls=tls)
    for command in (head, worker):
        assert expected.items() <= command.env.items()
        assert "RAY_USE_TLS=1" in command.shell()
    assert "RAY_USE_TLS" not in head_command(num_cpus=0).env


def test_cluster_commands_print_tls_only_when_all_three_files_are_given() -> None:
    runner = CliRunner()
    base = ["commands", "--domain", "health", "--keyring", "/k.json"]
    tls = ["--tls-ca", "/ca.pem", "--tls-cert", "/n.pem", "--tls-key", "/n.key"]
    printed = runner.invoke(cluster_app, [*base, *tls])
    assert printed.exit_code == 0, printed.output
    commands = [line for line in printed.stdout.splitlines() if not line.startswith("#")]
    assert len(commands) == 2
    assert all("RAY_USE_TLS=1" in line and "RAY_TLS_CA_CERT=/ca.pem" in line for line in commands)
    partial = runner.invoke(cluster_app, [*base, "--tls-ca", "/ca.pem"])
    assert partial.exit_code == 2
    assert "all of --tls-ca" in partial.output
