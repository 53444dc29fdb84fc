"""The roles a principal can hold: shared by the server (who may do what) and the client (who is who).

Kept apart from the server's token handling so that the client and the offline verifier name roles
without importing the server.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    # Bound to one domain: creates and manages that domain's stewards and operators, nothing else.
    DOMAIN_ADMIN = "domain_admin"
    STEWARD = "steward"
    POLICY_OFFICER = "policy_officer"
    OPERATOR = "operator"
    OUTPUT_CHECKER = "output_checker"
    AUDITOR = "auditor"
