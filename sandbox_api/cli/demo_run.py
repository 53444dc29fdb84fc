"""``sandbox demo``: a deployment with generated data, a narrated walkthrough, then a gateway that stays.

A first run cannot get stuck: the port is taken before anything is written, so a busy port fails with
nothing made; a first run that stops half-way removes the state directory it created; ``--fresh``
deletes what an earlier run left (lock files included) but never a directory holding anything else.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from sandbox_api.cli.common import fail, refusal
from sandbox_api.cli.deployment import SHUTDOWN_GRACE_S, StateDir, create_gateway, settings_for

if TYPE_CHECKING:
    import uvicorn

    from sandbox_api.server.settings import Settings

DEMO_TOKENS_FILE: Final = "demo-tokens.json"
DEMO_SCOPE: Final = "flu-study-2026"  # demo_data.DEMO_SCOPE_NAME, without importing the data generator
DEFAULT_SEED: Final = 20260101  # demo_data.DEFAULT_SEED (a test keeps the two equal)
_ONE_LINE_EXAMPLE: Final = "SELECT sex, COUNT(DISTINCT person_id) AS people FROM citizens GROUP BY sex"
# What a state directory may contain; ``--fresh`` refuses to delete a directory holding anything else.
STATE_ENTRIES: Final = frozenset(
    {
        "metadata.db",
        "metadata.db-wal",
        "metadata.db-shm",
        "metadata.db-journal",
        "keyring.json",
        "keyring.json.lock",
        "data",
        "uploads",
        DEMO_TOKENS_FILE,
    }
)


def written_by_a_deployment(name: str) -> bool:
    """Whether a deployment (or the demo) writes an entry of this name into its state directory: the
    known files, and the keyring's temporary copies (``.keyring.json.<hex>.tmp``) a crash may leave.

    >>> written_by_a_deployment("keyring.json.lock"), written_by_a_deployment(".keyring.json.9f2c.tmp")
    (True, True)
    >>> written_by_a_deployment("thesis.tex")
    False
    """
    return name in STATE_ENTRIES or (name.startswith(".keyring.json.") and name.endswith(".tmp"))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or the command ends saying the port is taken (nothing made)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as busy:
        listener.close()
        raise fail(
            f"cannot listen on {host}:{port} ({busy.strerror}): another program (an earlier demo?) uses it. "
            "Stop it, or pick another port with --port; nothing was created."
        ) from None
    return listener


class BackgroundServer:
    """The gateway served by uvicorn on an already bound socket, in a thread of this process."""

    def __init__(self, settings: Settings, *, listener: socket.socket) -> None:
        import uvicorn

        self._socket = listener
        bound_host, bound_port = listener.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        config = uvicorn.Config(
            create_gateway(settings),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server: uvicorn.Server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name="sandbox-gateway", daemon=True
        )

    def start(self, *, timeout: float = 60.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise fail("the gateway did not start; see the messages above")
            time.sleep(0.02)

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            typer.echo("\nStopping the gateway…")
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._socket.close()


def reset_state_dir(state_dir: Path) -> None:
    """Delete a previous demo deployment, but never a directory that holds anything else."""
    if not state_dir.exists():
        return
    unexpected = sorted(p.name for p in state_dir.iterdir() if not written_by_a_deployment(p.name))
    if unexpected:
        raise fail(
            f"--fresh refuses to delete {state_dir}: it holds {unexpected}, which a deployment never writes"
        )
    shutil.rmtree(state_dir)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds bearer tokens)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def how_to_run_sandbox(*, on_path: str | None, beside: Path) -> str:
    """How to call ``sandbox`` from a shell: by name when ``on_path`` (what the PATH finds) is this
    environment's copy ``beside``, else by that copy's path (a fresh clone has not activated it)."""
    if on_path is not None and Path(on_path).resolve() == beside.resolve():
        return "sandbox"
    if beside.exists():
        return str(beside)
    return "sandbox"


def demo_command(
    state_dir: StateDir = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the demo state directory, start over.")
    ] = False,
    citizens: Annotated[int, typer.Option(min=100, help="Rows of civil-affairs/citizens.")] = 200_000,
    visits: Annotated[int, typer.Option(min=100, help="Rows of health-bureau/visits.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = DEFAULT_SEED,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on (0: any free port).")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after the walkthrough.")
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bars on long steps.")
    ] = True,
) -> None:
    """Set up a demo deployment with generated data, narrate a walkthrough, keep serving."""
    from sandbox_api.cli import demo
    from sandbox_api.client.api_client import ClientError, SandboxClient
    from sandbox_api.server.bootstrap import init_deployment

    settings = settings_for(state_dir)
    tokens_file = settings.state_dir / DEMO_TOKENS_FILE
    if not fresh and settings.keyring_path.exists() and not tokens_file.exists():
        raise fail(
            f"{settings.state_dir} holds a deployment that was not set up by the demo; "
            "use --state-dir for another directory or --fresh to start over"
        )
    listener = bind(host, port)  # before anything is written: a busy port leaves nothing half-made
    try:
        if fresh:
            reset_state_dir(settings.state_dir)
        existed = settings.state_dir.exists()
        result = init_deployment(settings)
        server = BackgroundServer(settings, listener=listener)
    except BaseException:
        listener.close()
        raise
    try:
        server.start()
        if result.created:
            if result.admin_token is None:
                raise fail("the new deployment gave no admin token")
            with SandboxClient(server.url, result.admin_token, timeout=600.0) as admin:
                cast = demo.provision(
                    admin,
                    admin_token=result.admin_token,
                    citizens_n=citizens,
                    visits_n=visits,
                    seed=seed,
                    today=date.today(),
                    say=typer.echo,
                    progress=progress,
                )
            _write_private(tokens_file, cast.to_json())
        else:
            typer.echo(f"Reusing the demo deployment in {settings.state_dir} (--fresh starts over).")
            cast = demo.DemoCast.from_json(tokens_file.read_text(encoding="utf-8"), base_url=server.url)
        demo.print_tokens(cast, say=typer.echo)
        demo.run_walkthrough(cast, say=typer.echo, progress=progress)
    except BaseException as stopped:
        server.stop()
        half_made = result.created and not tokens_file.exists()
        if half_made and not existed:
            shutil.rmtree(settings.state_dir, ignore_errors=True)
        told = " (the half-made state directory was removed)" if half_made and not existed else ""
        if isinstance(stopped, ClientError):
            raise fail(f"the demo stopped{told}: {refusal(stopped)}") from None
        if half_made and existed:
            typer.secho("the demo stopped half-way: run it again with --fresh", err=True)
        raise
    if not serve_after:
        server.stop()
        return
    _print_next_steps(server.url, tokens_file, cast.tokens["alice"])
    server.wait()


def _print_next_steps(url: str, tokens_file: Path, operator_token: str) -> None:
    sandbox = how_to_run_sandbox(
        on_path=shutil.which("sandbox"), beside=Path(sys.executable).parent / "sandbox"
    )
    typer.echo("")
    typer.echo(f"Serving at {url}: OpenAPI docs at {url}/docs. Ctrl-C stops it.")
    typer.echo(
        f"Web console at {url.rstrip('/')}/console: each role signs in there by pasting its token "
        "(listed above; alice is the operator, audrey the auditor)."
    )
    typer.echo(
        f"Tokens are kept (owner-readable only) in {tokens_file}. In another shell, as operator alice:"
    )
    if sandbox != "sandbox":
        typer.echo(f"  (`sandbox` is not on your PATH: run {sandbox}, or first: source .venv/bin/activate)")
    typer.echo(f"  export SANDBOX_URL={url} SANDBOX_TOKEN={operator_token}")
    typer.echo(f"  {sandbox} scope list")
    typer.echo(f'  {sandbox} job submit --scope {DEMO_SCOPE} "{_ONE_LINE_EXAMPLE}"')
    typer.echo(f"  {sandbox} job list")
    typer.echo(
        "  Notebooks: pip install jupyterlab, then jupyter lab notebooks/ with the same two variables set."
    )
