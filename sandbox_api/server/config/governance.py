"""The audit log, witnesses, classification levels, the access trace and alerts on unusual use."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings


class GovernanceSettings(BaseSettings):
    """One part of ``Settings`` (``server/settings.py``)."""

    audit_checkpoint_every: PositiveInt = Field(
        1000,
        description=("A signed checkpoint of the audit chain head is stored every this many events."),
    )
    audit_witnesses_required: list[str] = Field(
        default_factory=list,
        description=(
            'The witnesses that must co-sign every audit checkpoint (docs/auditing.md, "Witnessed '
            'checkpoints"): witness names, `domain:NAME` (some witness of that domain) or `domain:*` '
            "(every registered domain witness). Reported per checkpoint by `GET /v1/audit/checkpoints` "
            "and carried in the audit bundle, where offline verification names what is missing."
        ),
    )
    audit_checkpoint_minutes: PositiveInt = Field(
        60,
        description=(
            "A signed checkpoint is also stored with the first event appended once this many minutes "
            "have passed since the last checkpoint, so a quiet deployment still gets regular signed "
            "heads. Whichever of the two limits is reached first triggers the checkpoint."
        ),
    )
    classification_levels_file: Path | None = Field(
        None,
        description=(
            "A YAML or JSON file defining the deployment's classification levels and the floors each "
            "sets (minimum k, uses per column class, masks, differential privacy, Python, approvals) and "
            "the default level of data whose manifest declares none (docs/governance.md). Unset: the "
            "built-in levels L1 (public) to L4 (highly sensitive), default L3."
        ),
    )
    classification_default_level: str | None = Field(
        None,
        description=(
            "The level of a dataset version whose manifest declares none, overriding the levels' own "
            "default; it must be one of the defined levels."
        ),
    )
    audit_groups_below_k: bool = Field(
        False,
        description=(
            "Count, inside the sandbox, the groups a SQL job's k rule removes, and write the number "
            "in the job's `job.released` audit event for auditors (never shown to operators). It is a "
            "second pass over the job's data: about 1.15x the job's time (docs/disclosure.md)."
        ),
    )
    audit_read_trace: bool = Field(
        True,
        description=(
            "Record every authenticated read (each GET under /v1, and dry runs) as a `read.*` audit "
            "event naming who asked, for which ids and filters, and the answer's status "
            "(docs/governance.md). Off only where another layer keeps the same trace."
        ),
    )
    audit_read_flush_ms: PositiveInt = Field(
        200,
        description=(
            "Read events wait at most this many milliseconds before one transaction chains them, so "
            "reads cost no write of their own; a crash loses at most this window's reads."
        ),
    )
    audit_read_flush_events: PositiveInt = Field(
        256,
        description="Read events are also chained as soon as this many are waiting.",
    )
    alerts_enabled: bool = Field(
        True,
        description=(
            "Watch refusals, jobs, result reads and privacy-budget charges per operator and scope, and "
            "raise alerts on unusual use for auditors (`GET /v1/alerts`; docs/governance.md). Detection "
            "runs on a background thread after each event, never in the request."
        ),
    )
    alerts_window_minutes: PositiveInt = Field(
        60, description="The window every alert rule counts over, in minutes."
    )
    alerts_refusals: PositiveInt = Field(
        5,
        description="Refused requests and rejected jobs of one operator under one scope within the window "
        "that raise a `refusal_burst` alert.",
    )
    alerts_near_identical: PositiveInt = Field(
        4,
        description="Queries of one operator under one scope within the window, each differing from another "
        "by one WHERE condition only (normalised with sqlglot), that raise `near_identical_queries`.",
    )
    alerts_ledger_hits: PositiveInt = Field(
        3,
        description="Result rows the released-cohort ledger withheld from one operator's jobs under one "
        "scope within the window that raise `ledger_hits`.",
    )
    alerts_budget_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of a scope's differential-privacy budget one operator spends within the window "
        "that raises `budget_burn`.",
    )
    alerts_off_hours_jobs: PositiveInt = Field(
        1,
        description="Jobs outside the hours their scope's purpose implies (the scope's `hours:`) within "
        "the window that raise `off_hours`.",
    )
    alerts_download_rows: PositiveInt = Field(
        100_000,
        description="Result rows one operator reads under one scope within the window that raise "
        "`download_volume`.",
    )
    alerts_history: PositiveInt = Field(
        200,
        description="The most records of each kind (jobs, refusals, reads, charges) one detection reads: "
        "bounds its cost whatever an operator does.",
    )
    alerts_webhook_url: str | None = Field(
        None,
        description="Also POST every alert as JSON to this URL (a failed delivery is audited as "
        "`alert.webhook.failed`; the alert stays in the API). Unset: no webhook.",
    )
    alerts_suspend: bool = Field(
        False,
        description="Suspend the operator an alert is about, pending review: the operator is disabled "
        "(audited, queued jobs cancelled) until an admin enables them again.",
    )
