"""Every route of the role matrix has a command: no role needs curl for any part of its job.

A new route fails ``test_every_route_has_a_command`` until a command (and this table) names it.
"""

from __future__ import annotations

from typing import Any

import typer

from sandbox_api.cli.main import app
from tests.sandbox_api.server.test_role_matrix import MATRIX

# (method, route) -> the command that calls it
COMMANDS: dict[tuple[str, str], str] = {
    ("GET", "/v1/health"): "whoami",  # every remote command; whoami is the smallest
    ("GET", "/v1/whoami"): "whoami",
    ("POST", "/v1/domains"): "domain create",
    ("GET", "/v1/domains"): "domain list",
    ("POST", "/v1/domains/{name}/keys/rotate"): "domain rotate-key",
    ("POST", "/v1/principals"): "principal create",
    ("GET", "/v1/principals"): "principal list",
    ("POST", "/v1/principals/{name}/tokens"): "token issue",
    ("GET", "/v1/principals/{name}/tokens"): "token list",
    ("DELETE", "/v1/principals/{name}/tokens"): "token revoke",
    ("DELETE", "/v1/principals/{name}/tokens/{token_id}"): "token revoke",  # with --id
    ("POST", "/v1/principals/{name}/disable"): "principal disable",
    ("POST", "/v1/principals/{name}/enable"): "principal enable",
    ("POST", "/v1/datasets"): "dataset upload",  # with --create
    ("GET", "/v1/datasets"): "dataset list",
    ("GET", "/v1/datasets/{domain}/{name}"): "dataset show",
    ("POST", "/v1/datasets/{domain}/{name}/versions"): "dataset upload",
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/retire"): "dataset retire",
    ("GET", "/v1/datasets/{domain}/{name}/versions/{version}"): "dataset review",
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/publish"): "dataset publish",
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/return"): "dataset return",
    ("POST", "/v1/datasets/{domain}/{name}/versions/{version}/shred"): "dataset shred",
    ("POST", "/v1/scopes"): "scope create",
    ("GET", "/v1/scopes"): "scope list",
    ("GET", "/v1/scopes/{name}"): "scope show",
    ("POST", "/v1/scopes/{name}/versions/{version_id}/approve"): "scope approve",
    ("POST", "/v1/scopes/{name}/versions/{version_id}/reject"): "scope reject",
    ("POST", "/v1/scopes/{name}/versions/{version_id}/revoke"): "scope revoke",
    ("POST", "/v1/applications"): "application submit",
    ("GET", "/v1/applications"): "application list",
    ("GET", "/v1/applications/{application_id}"): "application show",
    ("POST", "/v1/applications/{application_id}/draft"): "application draft",
    ("POST", "/v1/applications/{application_id}/refuse"): "application refuse",
    ("GET", "/v1/alerts"): "alert list",
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): "alert acknowledge",
    ("POST", "/v1/jobs/check"): "job check",
    ("POST", "/v1/jobs"): "job submit",
    ("GET", "/v1/jobs"): "job list",
    ("GET", "/v1/jobs/{job_id}"): "job status",
    ("GET", "/v1/jobs/{job_id}/result"): "job result",
    ("POST", "/v1/jobs/{job_id}/cancel"): "job cancel",
    ("GET", "/v1/jobs/{job_id}/receipt"): "job receipt",
    ("POST", "/v1/jobs/{job_id}/replay"): "replay",
    ("GET", "/v1/reviews"): "review list",
    ("GET", "/v1/reviews/{job_id}"): "review show",
    ("POST", "/v1/reviews/{job_id}/release"): "review release",
    ("POST", "/v1/reviews/{job_id}/deny"): "review deny",
    ("GET", "/v1/audit/events"): "audit events",
    ("GET", "/v1/audit/export"): "audit export",
    ("GET", "/v1/audit/head"): "audit head",
    ("GET", "/v1/audit/bundle"): "audit bundle",
    ("GET", "/v1/audit/checkpoints"): "audit checkpoints",
    ("POST", "/v1/audit/checkpoints/{seq}/witness"): "witness sign",
    ("POST", "/v1/witnesses"): "witness register",
    ("GET", "/v1/witnesses"): "witness list",
    ("GET", "/v1/keys/signing"): "keys export",
    ("POST", "/v1/keys/signing/rotate"): "keys rotate",
    ("POST", "/v1/publications"): "publication propose",
    ("GET", "/v1/publications"): "publication list",
    ("GET", "/v1/publications/{publication_id}"): "publication show",
    ("POST", "/v1/publications/{publication_id}/publish"): "publication publish",
    ("POST", "/v1/publications/{publication_id}/refuse"): "publication refuse",
    ("POST", "/v1/publications/{publication_id}/withdraw"): "publication withdraw",
    ("GET", "/v1/open-data"): "open-data list",
    ("GET", "/v1/open-data/{publication_id}"): "open-data show",
    ("GET", "/v1/open-data/{publication_id}/data.csv"): "open-data download",
    # Outside /v1 (probes and the scrape route), yet still a command each: operations staff need no curl.
    ("GET", "/livez"): "system health",
    ("GET", "/readyz"): "system health",
    ("GET", "/metrics"): "system metrics",
}


def _commands(group: Any, prefix: str = "") -> set[str]:
    """Every command's full name (``job list``); groups hold ``commands`` (typer carries its own click)."""
    if not hasattr(group, "commands"):
        return {prefix.strip()}
    found: set[str] = set()
    for name, command in group.commands.items():
        found |= _commands(command, f"{prefix} {name}")
    return found


def test_every_route_has_a_command() -> None:
    assert set(COMMANDS) == set(MATRIX), "a route without a command (or a command for a removed route)"
    existing = _commands(typer.main.get_command(app))
    assert set(COMMANDS.values()) - existing == set()
