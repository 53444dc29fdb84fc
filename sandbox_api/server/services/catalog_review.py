"""The catalog workflow's rules: which version states exist, and who may publish or return a draft.

    upload ──▶ draft ──publish (a second steward)──▶ active ──retire──▶ retired
                 │                                      └──shred──▶ shredded
                 └──return (reasons)──▶ returned ──retire──▶ retired

A version is content-addressed, so a correction is a new upload (a new draft); a returned version stays
in the history with the reasons it was returned for. Four eyes: the steward who uploaded a draft can
neither publish nor return it. Only ``active`` versions are live: jobs, dry runs, mock data, the
policies' catalog and operators' listings read nothing else.

Pure: the functions below take the facts and return the error to raise, or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox_api.errors import Conflict, Forbidden, InvalidInput, ServiceError
from sandbox_api.server.services.validation_report import report_passed

DRAFT = "draft"
RETURNED = "returned"
ACTIVE = "active"  # published: the state name predates the workflow and is kept for stored rows
RETIRED = "retired"

REVIEWABLE = frozenset({DRAFT})


def four_eyes_refusal(*, uploader: str, reviewer: str) -> Forbidden | None:
    """The uploader of a draft cannot review it.

    >>> four_eyes_refusal(uploader="stu", reviewer="sam") is None
    True
    >>> four_eyes_refusal(uploader="stu", reviewer="stu").code
    'forbidden'
    """
    if uploader == reviewer:
        return Forbidden(
            "the steward who uploaded a version cannot review it: ask a second steward of the domain "
            "(four eyes)"
        )
    return None


def publish_refusal(
    *, state: str, uploader: str, reviewer: str, validation: Mapping[str, Any] | None
) -> ServiceError | None:
    """Why ``reviewer`` may not publish a version in ``state``, or None.

    >>> publish_refusal(state="draft", uploader="stu", reviewer="sam", validation={"passed": True})
    >>> publish_refusal(state="returned", uploader="stu", reviewer="sam", validation=None).code
    'conflict'
    """
    if state not in REVIEWABLE:
        return Conflict(
            f"the version is {state}; only a draft is published (a returned version is corrected by "
            "uploading the corrected files as a new draft)"
        )
    refused = four_eyes_refusal(uploader=uploader, reviewer=reviewer)
    if refused is not None:
        return refused
    if not report_passed(validation):
        return Conflict("the draft's validation report has failed checks: return it for correction")
    return None


def return_refusal(*, state: str, uploader: str, reviewer: str, reason: str) -> ServiceError | None:
    """Why ``reviewer`` may not return a version in ``state`` with ``reason``, or None.

    >>> return_refusal(state="draft", uploader="stu", reviewer="sam", reason=" ").code
    'invalid-input'
    """
    if not reason.strip():
        return InvalidInput("returning a version needs reasons the uploader can act on")
    if state not in REVIEWABLE:
        return Conflict(f"the version is {state}; only a draft is returned for correction")
    return four_eyes_refusal(uploader=uploader, reviewer=reviewer)
