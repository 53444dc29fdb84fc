"""Who may manage whom: the one rule for principal and token administration.

An admin manages everyone. A domain administrator manages only the stewards and operators of their own
domain: they cannot touch admins, other domain administrators, officers, checkers or auditors, nor anyone
of another domain, so a compromised domain administrator can at worst lock out or add people of one
domain. Pure: the routes load the target and audit the refusal.
"""

from __future__ import annotations

from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal

#: The roles a domain administrator may create and manage (within their own domain).
DOMAIN_MANAGED = frozenset({Role.STEWARD, Role.OPERATOR})


def refusal(actor: Principal, *, role: Role, domain: str | None) -> str | None:
    """Why ``actor`` may not manage a principal of ``role`` in ``domain``; None when it may.

    >>> admin = Principal(name="root", role=Role.ADMIN)
    >>> dana = Principal(name="dana", role=Role.DOMAIN_ADMIN, domain="health")
    >>> refusal(admin, role=Role.AUDITOR, domain=None) is None
    True
    >>> refusal(dana, role=Role.STEWARD, domain="health") is None
    True
    >>> refusal(dana, role=Role.STEWARD, domain="tax")
    'domain administrator dana manages only domain health, not domain tax'
    >>> refusal(dana, role=Role.AUDITOR, domain=None)
    'domain administrator dana manages only stewards and operators, not auditor'
    """
    if actor.role is Role.ADMIN:
        return None
    if actor.role is not Role.DOMAIN_ADMIN or actor.domain is None:
        return f"role {actor.role.value} may not manage principals"
    if role not in DOMAIN_MANAGED:
        return f"domain administrator {actor.name} manages only stewards and operators, not {role.value}"
    if domain != actor.domain:
        where = f"domain {domain}" if domain is not None else "principals without a domain"
        return f"domain administrator {actor.name} manages only domain {actor.domain}, not {where}"
    return None
