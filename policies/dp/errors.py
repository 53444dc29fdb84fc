"""Typed errors of differential privacy; part of the ``PolicyError`` family, each with a stable code."""

from __future__ import annotations

from policies.errors import PolicyError


class DpError(PolicyError):
    """Base class of the differential-privacy errors."""

    code = "dp-error"


class DpResultInvalid(DpError):
    """A pre-noise result lacks a column its DP plan promised (it was not produced by the DP rewrite)."""

    code = "dp-result-invalid"


class BudgetExhausted(DpError):
    """A job would spend more epsilon (or delta) than its scope lineage has left for this grantee.

    The detail states what the job needs and what is left: both are known to the grantee anyway.
    """

    code = "dp-budget-exhausted"


class BudgetEntryUnknown(DpError):
    """A refund names a charge that was never made (or was already refunded)."""

    code = "dp-charge-unknown"
