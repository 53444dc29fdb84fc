"""Every ``sandbox`` command line in the README and the docs names a real command and real options.

The commands themselves run against a live gateway in ``test_roles``; this keeps the documentation from
drifting away from them (a renamed command or option fails here).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from sandbox_api.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = ("README.md", "docs/cli.md", "docs/auditing.md", "docs/operations.md", "docs/dp.md")


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for name in DOCUMENTS:
        text = (ROOT / name).read_text(encoding="utf-8").replace("\\\n", " ")
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
            for line in block.splitlines():
                line = line.split(" # ", 1)[0].strip().removeprefix("$ ")
                for part in line.split("&&"):
                    part = part.strip()
                    if part.startswith("sandbox "):
                        found.append((name, part))
    return found


def _resolve(args: list[str]) -> tuple[Any, list[str]]:
    """The command that ``args`` name, and the arguments left for it."""
    command: Any = typer.main.get_command(app)
    while hasattr(command, "commands") and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


LINES = _command_lines()


def test_the_docs_show_commands_of_every_area() -> None:
    areas = {shlex.split(line)[1] for _, line in LINES}
    assert {"domain", "principal", "token", "dataset", "scope", "job", "review", "audit"} <= areas


@pytest.mark.parametrize(("document", "line"), LINES, ids=[f"{d}:{line[:60]}" for d, line in LINES])
def test_a_documented_command_exists_with_its_options(document: str, line: str) -> None:
    command, args = _resolve(shlex.split(line)[1:])
    assert not hasattr(command, "commands"), f"{document}: {line!r} does not name a command"
    known = {option for param in command.params for option in (*param.opts, *param.secondary_opts)}
    used = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    assert used <= known, f"{document}: {line!r} uses {sorted(used - known)}"
