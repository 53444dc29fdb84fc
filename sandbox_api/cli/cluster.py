"""``sandbox cluster``: print or run the ``ray start`` commands of a head node and of a domain's workers.

Mounted into the main CLI with ``app.add_typer(cluster_app, name="cluster")``. The command lines come
from ``executors.ray_cluster`` (which does not import Ray), so ``cluster commands`` works on a machine
without a cluster; ``start-head`` and ``start-worker`` run them with the ``ray`` executable on the PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    # Imported inside the commands: the executors package loads the engine, which `sandbox --help` and
    # every other command should not wait for.
    from executors.ray_cluster import NodeCommand, RayTls

cluster_app = typer.Typer(help="Ray cluster nodes: a head, and workers per domain.", no_args_is_help=True)

DomainOpt = Annotated[
    list[str], typer.Option("--domain", help="A domain the worker serves (repeat for several).")
]
KeyringOpt = Annotated[
    str, typer.Option("--keyring", help="The node's keyring file: the keys of its domains, no others.")
]
CpusOpt = Annotated[int | None, typer.Option("--num-cpus", help="CPUs this node offers to jobs.")]
TlsCaOpt = Annotated[
    str | None, typer.Option("--tls-ca", help="TLS for Ray's traffic: the authority every node trusts.")
]
TlsCertOpt = Annotated[
    str | None, typer.Option("--tls-cert", help="TLS for Ray's traffic: this node's certificate (PEM).")
]
TlsKeyOpt = Annotated[str | None, typer.Option("--tls-key", help="TLS for Ray's traffic: its key (PEM).")]


def _tls(ca: str | None, cert: str | None, key: str | None) -> RayTls | None:
    from executors.ray_cluster import RayTls

    given = [v for v in (ca, cert, key) if v]
    if not given:
        return None
    if len(given) != 3 or ca is None or cert is None or key is None:
        typer.echo("TLS for Ray needs all of --tls-ca, --tls-cert and --tls-key", err=True)
        raise typer.Exit(code=2)
    return RayTls(ca=ca, cert=cert, key=key)


def _run(command: NodeCommand) -> None:
    if shutil.which(command.argv[0]) is None:
        typer.echo(f"{command.argv[0]!r} is not on the PATH; install Ray on this node first", err=True)
        raise typer.Exit(code=2)
    typer.echo(command.shell())
    completed = subprocess.run(list(command.argv), env={**os.environ, **command.env}, check=False)  # noqa: S603
    raise typer.Exit(code=completed.returncode)


def _commands(
    *, address: str, port: int, domains: list[str], keyring: str, num_cpus: int | None, tls: RayTls | None
) -> tuple[NodeCommand, NodeCommand]:
    from executors.errors import ExecutionError
    from executors.ray_cluster import head_command, worker_command

    try:
        return (
            head_command(port=port, num_cpus=0, tls=tls),
            worker_command(address=address, domains=domains, keyring=keyring, num_cpus=num_cpus, tls=tls),
        )
    except ExecutionError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(code=2) from exc


@cluster_app.command("commands")
def commands(
    domain: DomainOpt,
    keyring: KeyringOpt,
    address: Annotated[str, typer.Option(help="The head node's address, host:port.")] = "HEAD_HOST:6379",
    port: Annotated[int, typer.Option(help="The head node's port.")] = 6379,
    num_cpus: CpusOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Print the command for the head node (serving no domain) and for a worker of the domains."""
    head, worker = _commands(
        address=address,
        port=port,
        domains=domain,
        keyring=keyring,
        num_cpus=num_cpus,
        tls=_tls(tls_ca, tls_cert, tls_key),
    )
    typer.echo("# on the head node (runs no job: it serves no domain)")
    typer.echo(head.shell())
    typer.echo(f"# on each worker node of {', '.join(domain)}")
    typer.echo(worker.shell())


@cluster_app.command("start-head")
def start_head(
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 6379,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Start this machine as the cluster's head node (serving no domain)."""
    from executors.ray_cluster import head_command

    _run(head_command(port=port, num_cpus=0, tls=_tls(tls_ca, tls_cert, tls_key)))


@cluster_app.command("start-worker")
def start_worker(
    domain: DomainOpt,
    keyring: KeyringOpt,
    address: Annotated[str, typer.Option(help="The head node's address, host:port.")],
    num_cpus: CpusOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Join the cluster at ADDRESS as a worker node serving the domains, with the node's keyring."""
    _, worker = _commands(
        address=address,
        port=6379,
        domains=domain,
        keyring=keyring,
        num_cpus=num_cpus,
        tls=_tls(tls_ca, tls_cert, tls_key),
    )
    _run(worker)
