"""The schema browser (classes, uses, versions and row counts, never rows) and the steward's versions
page: upload a draft, review another steward's draft with its validation report (publish or return with
reasons), retire, shred. What each principal sees is what ``GET /v1/datasets`` shows them: operators see
published versions only."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query
from starlette.requests import Request
from starlette.responses import Response

from policies.model import DatasetGrant
from sandbox_api.errors import InvalidInput, PayloadTooLarge
from sandbox_api.manifest import IDENTIFIER
from sandbox_api.manifest_draft import CLASSES, SAMPLE_BYTES, TYPES, draft_table, schema_of_sample
from sandbox_api.roles import Role
from sandbox_api.server.console.web import PREFIX, CatalogV, StewardV, Visitor, signed_in
from sandbox_api.server.deps import deny
from sandbox_api.server.routes.datasets import upload_version
from sandbox_api.server.services.catalog import DatasetView
from sandbox_api.server.services.catalog_review import four_eyes_refusal
from sandbox_api.server.services.scopes import parse_stored_view

router = APIRouter(prefix=PREFIX + "/datasets", include_in_schema=False)


@router.get("")
def datasets_page(who: CatalogV) -> Response:
    principal = who.who
    services = who.services
    views = services.catalog.list_datasets(
        domain=principal.domain if principal.role is Role.STEWARD else None
    )
    if principal.role is Role.OPERATOR:
        # An operator sees the datasets of their active scopes, and how each scope lets them use a column.
        grants: dict[str, list[tuple[str, DatasetGrant]]] = {}
        for view in services.scopes.granted_to(principal):
            for ref, grant in parse_stored_view(view).datasets.items():
                grants.setdefault("/".join(ref.split("/")[:2]), []).append((view.name, grant))
        views = [v.published_only() for v in views if v.ref in grants]
        return who.page("datasets.html", datasets=views, grants=grants, manifests={})
    return who.page("datasets.html", datasets=views, grants={}, manifests=drafted_manifests(views))


def _require_domain(who: Visitor, domain: str) -> None:
    principal = who.who
    if principal.domain != domain:
        raise deny(
            who.services,
            who.request,
            principal,
            f"steward of {principal.domain!r} cannot manage data of domain {domain!r}",
        )


def _four_eyes(who: Visitor, domain: str, name: str, version: str) -> None:
    """The API's checks before a review decision: the domain, then four eyes (refusals audited)."""
    _require_domain(who, domain)
    found = who.services.catalog.version(domain, name, version)
    refusal = four_eyes_refusal(uploader=found.created_by, reviewer=who.who.name)
    if refusal is not None:
        raise deny(who.services, who.request, who.who, refusal.detail)


@router.post("/{domain}/{name}/versions/{version}/publish")
def publish_version(
    domain: str,
    name: str,
    version: str,
    who: StewardV,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A second steward of the domain publishes a draft: it becomes the current version."""
    _four_eyes(who, domain, name, version)
    with who.services.db.write() as session:
        who.services.catalog.publish_version(
            session, actor=who.who.name, domain=domain, name=name, version_id=version, reason=reason
        )
    return who.redirect(PREFIX + "/datasets")


@router.post("/{domain}/{name}/versions/{version}/return")
def return_version(
    domain: str,
    name: str,
    version: str,
    who: StewardV,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A second steward of the domain returns a draft for correction, with reasons (an empty reason is
    refused by the service, after the domain gate)."""
    _four_eyes(who, domain, name, version)
    with who.services.db.write() as session:
        who.services.catalog.return_version(
            session, actor=who.who.name, domain=domain, name=name, version_id=version, reason=reason
        )
    return who.redirect(PREFIX + "/datasets")


@router.post("/{domain}/{name}/versions/{version}/retire")
def retire_version(domain: str, name: str, version: str, who: StewardV) -> Response:
    principal = who.who
    if principal.domain != domain:
        raise deny(
            who.services,
            who.request,
            principal,
            f"steward of {principal.domain!r} cannot manage data of domain {domain!r}",
        )
    with who.services.db.write() as session:
        who.services.catalog.retire_version(
            session, actor=principal.name, domain=domain, name=name, version_id=version
        )
    return who.redirect(PREFIX + "/datasets")


ShredderV = Annotated[Visitor, Depends(signed_in(Role.STEWARD, Role.ADMIN))]
CONFIRM_CHARS = 12


@router.post("/{domain}/{name}/versions/{version}/shred")
def shred_version(
    domain: str,
    name: str,
    version: str,
    who: ShredderV,
    confirm: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Crypto-shred a version (the data key is destroyed: irreversible), after the steward typed the
    start of its id: a slip of the mouse must not destroy data."""
    principal = who.who
    if principal.role is Role.STEWARD and principal.domain != domain:
        raise deny(
            who.services,
            who.request,
            principal,
            f"only a steward of domain {domain!r} or an admin may crypto-shred its data",
        )
    if confirm.strip() != version[:CONFIRM_CHARS]:
        raise InvalidInput(
            f"type the first {CONFIRM_CHARS} characters of the version id ({version[:CONFIRM_CHARS]}) "
            "to confirm: shredding cannot be undone"
        )
    who.services.lifecycle.shred(
        actor=principal.name, domain=domain, name=name, version_id=version, reason=reason
    )
    return who.redirect(PREFIX + "/datasets")


@router.post("/{domain}/{name}/draft-manifest")
async def draft_manifest(
    domain: str,
    name: str,
    request: Request,
    who: StewardV,
    table: Annotated[str, Query(pattern=IDENTIFIER)] = "data",
    format: Annotated[Literal["csv", "parquet"], Query()] = "csv",
    whole: bool = False,
) -> Response:
    """A table of the manifest drafted from a sample of the file the steward picked (the head of a CSV
    file, the tail of a Parquet one: at most ``SAMPLE_BYTES``, read into memory and never stored): each
    column with its inferred type and a class to choose from a list, and the unit. console.js sends the
    sample and builds the manifest JSON from the steward's choices."""
    _require_domain(who, domain)
    sample = await _capped_body(request)
    schema = schema_of_sample(sample, parquet=format == "parquet", whole=whole)
    drafted = draft_table(table, schema)
    return who.page(
        "fragments/drafted_manifest.html", table=drafted, classes=CLASSES, types=TYPES, dataset=name
    )


async def _capped_body(request: Request) -> bytes:
    """The request body, refused once it passes the sample cap (a browser sends no more than the cap)."""
    if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        # A form's fields (already read for its CSRF token) are no file sample.
        raise InvalidInput("send the file's first bytes as application/octet-stream")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > SAMPLE_BYTES:
        raise PayloadTooLarge(f"the sample is {declared} bytes; at most {SAMPLE_BYTES} are read")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > SAMPLE_BYTES:
            raise PayloadTooLarge(f"the sample passes {SAMPLE_BYTES} bytes: send the file's first bytes only")
    return bytes(body)


@router.post("/{domain}/{name}/versions")
async def upload(domain: str, name: str, request: Request, who: StewardV) -> Response:
    """A new version from the browser (htmx posts the form with a progress bar): the API's own upload
    function, so the caps, the domain gate and the no-plaintext-on-disk rule are the same."""
    stored = await upload_version(domain, name, request, Response(), who.who, who.services)
    return who.page("fragments/uploaded.html", stored=stored)


def drafted_manifests(views: list[DatasetView]) -> dict[str, str]:
    """For each dataset, its current version's manifest (or, before any is published, its latest
    upload's) as the draft of the next one."""
    out = {}
    for view in views:
        current = view.current or (view.versions[-1] if view.versions else None)
        if current is None:
            continue
        tables = [
            {
                "name": t["name"],
                "unit": t["unit"],
                "columns": [
                    {
                        k: v
                        for k, v in c.items()
                        if k in ("name", "type", "class", "domain", "nullable") and v is not None
                    }
                    for c in t["columns"]
                ],
            }
            for t in current.tables
        ]
        out[view.ref] = json.dumps({"tables": tables}, indent=2, ensure_ascii=False)
    return out
