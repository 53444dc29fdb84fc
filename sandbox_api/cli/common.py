"""What every command that talks to a gateway shares: its address, the token, errors and id prefixes.

The client (and with it httpx, pydantic and the API's models) is imported when a command first talks to
a gateway, not when this module is imported, so ``sandbox --help`` does not wait for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Final

import typer

if TYPE_CHECKING:
    from sandbox_api.client.api_client import ClientError
    from sandbox_api.client.auditor import AuditorClient

DEFAULT_URL: Final = "http://127.0.0.1:8000"
# A prefix shorter than this is refused: four hex characters already tell apart thousands of ids, and a
# shorter one is more likely a typo than a choice.
MIN_PREFIX: Final = 4
# Jobs are listed in pages of this many while a prefix is resolved, up to _JOB_PAGES pages.
_JOB_PAGE: Final = 1000
_JOB_PAGES: Final = 20
# Seconds one request may take: long enough for an upload of a large table.
REQUEST_TIMEOUT_S: Final = 600.0

Url = Annotated[str, typer.Option("--url", envvar="SANDBOX_URL", help="Gateway address.")]
Token = Annotated[
    str, typer.Option("--token", envvar="SANDBOX_TOKEN", help="Bearer token.", show_default=False)
]

# What to try when the gateway answers a status, beyond what its detail says.
_HINTS: Final = {
    0: "is the gateway running? Start one with `sandbox serve` (or `sandbox demo`), or pass --url / "
    "set SANDBOX_URL",
    401: "the token is missing, unknown or revoked: pass --token or set SANDBOX_TOKEN",
    403: "your role may not do this: `sandbox whoami` says who the token belongs to",
}


def fail(message: str, *, code: int = 1) -> typer.Exit:
    """Print ``message`` in red on standard error; the caller raises the returned ``typer.Exit``."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def note(message: str) -> None:
    """A line for people (progress, next steps) on standard error, so standard output stays data."""
    typer.secho(message, err=True, fg=typer.colors.CYAN)


def refusal(error: ClientError, *, hint: str | None = None) -> str:
    """How a refused request is told: status, code, detail with every finding, and what to try."""
    lines = [f"{error.status} {error.code}: {error.detail}"]
    for finding in error.findings:
        # The field path (``fragment``) says where to fix a manifest or scope; keep it beside the message.
        where = str(finding.get("fragment") or "")
        message = str(finding.get("message", ""))
        located = f"{where}: {message}" if where and where not in message else message
        lines.append(f"  - [{finding.get('rule', '?')}] {located}")
    advice = hint or _HINTS.get(error.status)
    if advice:
        lines.append(f"hint: {advice}")
    return "\n".join(lines)


@contextmanager
def remote(url: str, token: str) -> Iterator[AuditorClient]:
    """A client of the gateway at ``url``; a refusal ends the command with its reasons and exit code 1."""
    from sandbox_api.client.api_client import ClientError
    from sandbox_api.client.auditor import AuditorClient
    from sandbox_api.client.tls import context_from_environment

    try:
        tls = context_from_environment(os.environ)
    except (OSError, ValueError) as unreadable:  # ssl.SSLError is an OSError
        raise fail(
            f"the TLS files named by SANDBOX_CA_BUNDLE / SANDBOX_CLIENT_CERT cannot be read: {unreadable}"
        ) from None
    try:
        with AuditorClient(url, token, timeout=REQUEST_TIMEOUT_S, tls=tls) as client:
            yield client
    except ClientError as refused:
        raise fail(refusal(refused)) from None


def resolve_prefix(prefix: str, candidates: Iterable[str], *, what: str) -> str:
    """The one candidate that ``prefix`` starts, or a ``LookupError`` that says what to type instead.

    >>> resolve_prefix("9f2c", ["9f2c41aa", "0b1d77ee"], what="job")
    '9f2c41aa'
    >>> resolve_prefix("0b", ["0b1d77ee"], what="job")
    Traceback (most recent call last):
    ...
    LookupError: job id prefix '0b' is too short: give at least 4 characters
    >>> resolve_prefix("abcd", ["abcd01", "abcd02"], what="job")
    Traceback (most recent call last):
    ...
    LookupError: job id prefix 'abcd' is ambiguous: it starts abcd01, abcd02; give more characters
    """
    unique = list(dict.fromkeys(candidates))
    if prefix in unique:
        return prefix
    if len(prefix) < MIN_PREFIX:
        raise LookupError(f"{what} id prefix {prefix!r} is too short: give at least {MIN_PREFIX} characters")
    matches = [candidate for candidate in unique if candidate.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(f"no {what} you may see has an id starting {prefix!r}")
    shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
    raise LookupError(f"{what} id prefix {prefix!r} is ambiguous: it starts {shown}; give more characters")


def resolve(prefix: str, candidates: Callable[[], Iterable[str]], *, full_length: int, what: str) -> str:
    """``prefix`` as a full id: as it is when it has the full length (no request), else by ``candidates``.
    A prefix that matches none or several ends the command with the reason."""
    if len(prefix) == full_length:
        return prefix
    try:
        return resolve_prefix(prefix, candidates(), what=what)
    except LookupError as unknown:
        raise fail(str(unknown)) from None


JOB_ID_LENGTH: Final = 32
VERSION_ID_LENGTH: Final = 64


def job_id(client: AuditorClient, prefix: str) -> str:
    """The full id of a job you may read, from a unique prefix (operators: among their own jobs)."""

    def every_job_id() -> Iterator[str]:
        for page in range(_JOB_PAGES):
            jobs = client.list_jobs(limit=_JOB_PAGE, offset=page * _JOB_PAGE)
            yield from (job.job_id for job in jobs)
            if len(jobs) < _JOB_PAGE:
                return

    return resolve(prefix, every_job_id, full_length=JOB_ID_LENGTH, what="job")


def review_id(client: AuditorClient, prefix: str) -> str:
    """The full id of a withheld job waiting for this checker, from a unique prefix."""
    return resolve(
        prefix,
        lambda: (review.job_id for review in client.list_reviews()),
        full_length=JOB_ID_LENGTH,
        what="withheld job",
    )


def scope_version_id(client: AuditorClient, scope: str, prefix: str) -> str:
    """The full id of a version of ``scope``, from a unique prefix."""
    return resolve(
        prefix,
        lambda: (version.version_id for version in client.get_scope(scope).versions),
        full_length=VERSION_ID_LENGTH,
        what=f"scope {scope} version",
    )


def dataset_version_id(client: AuditorClient, domain: str, name: str, prefix: str) -> str:
    """The full id of a version of ``domain/name``, from a unique prefix."""
    return resolve(
        prefix,
        lambda: (version.version_id for version in client.get_dataset(domain, name).versions),
        full_length=VERSION_ID_LENGTH,
        what=f"dataset {domain}/{name} version",
    )


def split_dataset(dataset: str) -> tuple[str, str]:
    """``domain/name`` as its two parts, or the command ends saying how to write it.

    >>> split_dataset("health-bureau/visits")
    ('health-bureau', 'visits')
    """
    domain, sep, name = dataset.partition("/")
    if not sep or not domain or not name or "/" in name:
        raise fail(f"give the dataset as DOMAIN/NAME, not {dataset!r}")
    return domain, name
