"""Datasets and their versions: declare, upload (streamed multipart, held in memory) as a draft, review
(publish or return, by a second steward of the domain), list, read schemas, retire."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from sandbox_api.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidUpload,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from sandbox_api.manifest import Manifest
from sandbox_api.roles import Role
from sandbox_api.schemas import DatasetCreate, DatasetOut, Decision, VersionOut, VersionStored
from sandbox_api.server.auth import Principal
from sandbox_api.server.deps import CatalogReaderDep, Services, ServicesDep, StewardDep, deny
from sandbox_api.server.openapi_doc import link
from sandbox_api.server.problems import raises
from sandbox_api.server.services.catalog import DatasetView, VersionView
from sandbox_api.server.services.catalog_review import four_eyes_refusal
from sandbox_api.server.services.ingest import UploadedFile
from sandbox_api.server.services.scopes import parse_stored_view

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

MAX_TABLES = 32

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["manifest"],
                    "properties": {
                        "manifest": {
                            "type": "string",
                            "description": 'JSON: {"tables": [{"name", "unit", "columns": [{"name", "type", '
                            '"class", "domain"?}]}]}',
                        }
                    },
                    "additionalProperties": {
                        "type": "string",
                        "format": "binary",
                        "description": "one CSV (UTF-8, header row) or Parquet file per table, the part "
                        "named after the table",
                    },
                }
            }
        },
    }
}


def version_out(view: VersionView) -> VersionOut:
    return VersionOut.model_validate(asdict(view))


def dataset_out(view: DatasetView, who: Principal | None = None) -> DatasetOut:
    """The dataset as ``who`` may see it: operators see published versions only, without reports or
    row counts."""
    operator = who is not None and who.role is Role.OPERATOR
    if operator:
        view = view.published_only()
    current = view.current
    return DatasetOut(
        domain=view.domain,
        name=view.name,
        description=view.description,
        created_at=view.created_at,
        current_version=None if current is None else current.version_id,
        versions=[version_out(v) for v in view.versions],
    )


def _require_steward_of(services: Services, request: Request, who: Principal, domain: str) -> None:
    if who.domain != domain:
        raise deny(
            services, request, who, f"steward of {who.domain!r} cannot manage data of domain {domain!r}"
        )


def _visible(services: Services, who: Principal) -> set[str] | None:
    """Dataset refs the caller may see; None means all."""
    if who.role is Role.OPERATOR:
        refs: set[str] = set()
        for view in services.scopes.granted_to(who):
            for key in parse_stored_view(view).datasets:
                refs.add("/".join(key.split("/")[:2]))
        return refs
    return None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Declare a dataset in the steward's domain",
    responses={
        **raises(NotAuthenticated, Forbidden, Conflict, InvalidInput, NotFound),
        201: {
            "links": {
                "GetDataset": link(
                    "get_dataset", domain="$response.body#/domain", name="$response.body#/name"
                )
            }
        },
    },
)
def create_dataset(
    body: DatasetCreate, request: Request, who: StewardDep, services: ServicesDep
) -> DatasetOut:
    _require_steward_of(services, request, who, body.domain)
    with services.db.write() as session:
        view = services.catalog.create_dataset(
            session, actor=who.name, domain=body.domain, name=body.name, description=body.description
        )
    return dataset_out(view)


@router.get(
    "",
    summary="List datasets: schemas, classes, versions, row counts (never rows)",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_datasets(who: CatalogReaderDep, services: ServicesDep) -> list[DatasetOut]:
    domain = who.domain if who.role is Role.STEWARD else None
    views = services.catalog.list_datasets(domain=domain)
    visible = _visible(services, who)
    return [dataset_out(v, who) for v in views if visible is None or v.ref in visible]


@router.get(
    "/{domain}/{name}",
    summary="One dataset: schema, classes, versions, row counts (never rows)",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_dataset(
    domain: str, name: str, request: Request, who: CatalogReaderDep, services: ServicesDep
) -> DatasetOut:
    if who.role is Role.STEWARD:
        _require_steward_of(services, request, who, domain)
    visible = _visible(services, who)
    if visible is not None and f"{domain}/{name}" not in visible:
        raise NotFound(f"dataset {domain}/{name} does not exist or is not in one of your active scopes")
    return dataset_out(services.catalog.get_dataset(domain, name), who)


@router.post(
    "/{domain}/{name}/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a version as a draft: multipart `manifest` (JSON) plus one CSV or Parquet file per table",
    description="The version is stored as a `draft` with its validation report; it goes live only when a "
    "second steward of the domain publishes it (unless the deployment sets `catalog_review_required` to "
    "false, when it is published at once). "
    "Answers 201 with a new version, or 200 with `created: false` when identical content was "
    "already stored (the version id is the SHA-256 of the canonical plaintext, so re-uploading is "
    "idempotent). "
    "Bodies above `max_upload_mb` are refused with 413 while streaming; files that do not parse or do not "
    "match the manifest are refused with 422 and nothing is stored.",
    openapi_extra=UPLOAD_BODY,
    responses={
        **raises(
            NotAuthenticated,
            Forbidden,
            NotFound,
            Conflict,
            InvalidUpload,
            PayloadTooLarge,
            UnsupportedMediaType,
        ),
        200: {"description": "identical content was already stored", "model": VersionStored},
    },
)
async def upload_version(
    domain: str, name: str, request: Request, response: Response, who: StewardDep, services: ServicesDep
) -> VersionStored:
    await run_in_threadpool(_require_steward_of, services, request, who, domain)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            "upload as multipart/form-data: a `manifest` field (JSON) and one file part per table"
        )
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"uploads are limited to {services.settings.max_upload_mb} MiB (max_upload_mb)")

    async def capped() -> AsyncGenerator[bytes, None]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(
                    f"uploads are limited to {services.settings.max_upload_mb} MiB (max_upload_mb)"
                )
            yield chunk

    parser = MultiPartParser(
        request.headers,
        capped(),
        max_files=MAX_TABLES,
        max_fields=4,
        max_part_size=services.settings.max_request_bytes,
    )
    # No plaintext on disk: a file part is spooled to a temporary file only once it grows past
    # spool_max_size, and the body is cut off at the upload cap before that can happen, so every file
    # part stays in memory (at most the cap) until it is encrypted.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidUpload(f"the multipart body is malformed: {exc.message}") from exc
    try:
        manifest = _manifest(form.getlist("manifest"))
        if manifest.level is not None and manifest.level not in services.scopes.levels.levels:
            defined = ", ".join(services.scopes.levels.levels)
            raise InvalidUpload(
                f"level {manifest.level!r} is not defined in this deployment; use one of {defined}",
                findings=[{"rule": "manifest.level", "message": f"defined: {defined}", "fragment": "level"}],
            )
        files = [
            UploadedFile(
                field=field,
                filename=value.filename or "",
                content_type=(value.content_type or "").lower(),
                stream=value.file,
            )
            for field, value in form.multi_items()
            if isinstance(value, UploadFile)
        ]
        stored = await run_in_threadpool(
            services.catalog.add_version,
            actor=who.name,
            domain=domain,
            name=name,
            manifest=manifest,
            files=files,
        )
    finally:
        await form.close()
    if not stored.created:
        response.status_code = status.HTTP_200_OK
    return VersionStored(dataset=f"{domain}/{name}", created=stored.created, version=version_out(stored.view))


def _manifest(values: list[Any]) -> Manifest:
    texts = [v for v in values if isinstance(v, str)]
    if len(texts) != 1 or len(values) != 1:
        raise InvalidUpload("send exactly one `manifest` form field holding JSON")
    try:
        return Manifest.model_validate(json.loads(texts[0]))
    except json.JSONDecodeError as exc:
        raise InvalidUpload(f"the manifest is not JSON: {exc.msg} at line {exc.lineno}") from exc
    except ValidationError as exc:
        raise InvalidUpload(
            "the manifest does not match its schema: fix the fields listed in findings",
            findings=[
                {
                    "rule": f"manifest.{e['type']}",
                    "message": e["msg"],
                    "fragment": ".".join(str(p) for p in e["loc"]),
                }
                for e in exc.errors()
            ],
        ) from exc


@router.post(
    "/{domain}/{name}/versions/{version}/retire",
    summary="Retire a version: new jobs no longer read it",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict),
)
def retire_version(
    domain: str, name: str, version: str, request: Request, who: StewardDep, services: ServicesDep
) -> DatasetOut:
    _require_steward_of(services, request, who, domain)
    with services.db.write() as session:
        services.catalog.retire_version(session, actor=who.name, domain=domain, name=name, version_id=version)
    return dataset_out(services.catalog.get_dataset(domain, name))


@router.get(
    "/{domain}/{name}/versions/{version}",
    summary="One version with its state, review and validation report",
    description="Stewards see their domain's versions with the validation report; operators see only "
    "published versions of datasets in their active scopes, without the report or row counts.",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_version(
    domain: str, name: str, version: str, request: Request, who: CatalogReaderDep, services: ServicesDep
) -> VersionOut:
    if who.role is Role.STEWARD:
        _require_steward_of(services, request, who, domain)
    visible = _visible(services, who)
    hidden = NotFound(f"dataset {domain}/{name} has no version {version} that you can see")
    if visible is not None and f"{domain}/{name}" not in visible:
        raise hidden
    found = services.catalog.version(domain, name, version)
    if who.role is Role.OPERATOR:
        if found.state in {"draft", "returned"}:
            raise hidden
        return version_out(found.for_operators())
    return version_out(found)


def _review_guard(
    services: Services, request: Request, who: Principal, domain: str, name: str, version: str
) -> None:
    """The checks before a review decision: the domain, and four eyes (refusals audited as denials)."""
    _require_steward_of(services, request, who, domain)
    found = services.catalog.version(domain, name, version)
    refusal = four_eyes_refusal(uploader=found.created_by, reviewer=who.name)
    if refusal is not None:
        raise deny(services, request, who, refusal.detail)


@router.post(
    "/{domain}/{name}/versions/{version}/publish",
    summary="Publish a draft (a second steward of the domain): it becomes the current version",
    description="Four eyes: the steward who uploaded the draft cannot publish it. Only a draft whose "
    "validation report passed is published; jobs started afterwards read it.",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def publish_version(
    domain: str,
    name: str,
    version: str,
    body: Decision,
    request: Request,
    who: StewardDep,
    services: ServicesDep,
) -> DatasetOut:
    _review_guard(services, request, who, domain, name, version)
    with services.db.write() as session:
        services.catalog.publish_version(
            session, actor=who.name, domain=domain, name=name, version_id=version, reason=body.reason
        )
    return dataset_out(services.catalog.get_dataset(domain, name), who)


@router.post(
    "/{domain}/{name}/versions/{version}/return",
    summary="Return a draft for correction, with reasons (a second steward of the domain)",
    description="The version stays in the history as `returned` with the reasons; the uploader corrects "
    "the files and uploads them as a new draft.",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def return_version(
    domain: str,
    name: str,
    version: str,
    body: Decision,
    request: Request,
    who: StewardDep,
    services: ServicesDep,
) -> DatasetOut:
    _review_guard(services, request, who, domain, name, version)
    with services.db.write() as session:
        services.catalog.return_version(
            session, actor=who.name, domain=domain, name=name, version_id=version, reason=body.reason
        )
    return dataset_out(services.catalog.get_dataset(domain, name), who)
