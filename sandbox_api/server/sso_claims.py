"""From the verified claims of a single sign-on token to a principal: pure, configured by settings.

The issuer says who someone is; this deployment decides what that means here. ``oidc_role_map`` maps
values of the role claim (an IdP group or app role such as ``sandbox-analyst``) to exactly one of the
service's roles. Anything ambiguous is refused rather than guessed: no mapped value, two mapped values
naming different roles, a name that is not a valid principal name, a steward or domain administrator
without a domain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sandbox_api.errors import NotAuthenticated
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal

# Same rule as a local principal's name (services/principals.py): names appear in scopes and logs.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_DOMAIN_BOUND = frozenset({Role.STEWARD, Role.DOMAIN_ADMIN})


@dataclass(frozen=True)
class ClaimMapping:
    name_claim: str = "preferred_username"
    role_claim: str = "roles"
    role_map: Mapping[str, Role] | None = None
    domain_claim: str = "domain"
    groups_claim: str = "groups"


def _strings(value: object) -> list[str]:
    """A claim that may be one string or a list of them (IdPs differ)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def principal_from_claims(claims: Mapping[str, object], mapping: ClaimMapping) -> Principal:
    """The principal the claims describe, or ``NotAuthenticated`` saying why not.

    >>> m = ClaimMapping(role_map={"analyst": Role.OPERATOR, "steward-hb": Role.STEWARD})
    >>> principal_from_claims({"preferred_username": "ann", "roles": ["analyst", "x"], "groups": ["cdc"]}, m)
    Principal(name='ann', role=<Role.OPERATOR: 'operator'>, domain=None, groups=('cdc',))
    >>> try:
    ...     principal_from_claims({"preferred_username": "ann", "roles": ["analyst", "steward-hb"]}, m)
    ... except NotAuthenticated as refused:
    ...     print(refused.detail)
    the token's roles claim maps to several roles (operator, steward); a principal holds exactly one
    """
    name = claims.get(mapping.name_claim)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NotAuthenticated(
            f"the token's {mapping.name_claim} claim is missing or not a valid principal name "
            "(1-63 lowercase letters, digits, '.', '_' or '-')"
        )
    role_map = mapping.role_map or {}
    roles = {role_map[v] for v in _strings(claims.get(mapping.role_claim)) if v in role_map}
    if not roles:
        raise NotAuthenticated(
            f"the token's {mapping.role_claim} claim maps to no role of this service; ask an admin to map it"
        )
    if len(roles) > 1:
        names = ", ".join(sorted(r.value for r in roles))
        raise NotAuthenticated(
            f"the token's {mapping.role_claim} claim maps to several roles ({names}); a principal holds "
            "exactly one"
        )
    (role,) = roles
    domain_value = claims.get(mapping.domain_claim)
    domain = domain_value if isinstance(domain_value, str) and _NAME.fullmatch(domain_value) else None
    if role in _DOMAIN_BOUND and domain is None:
        raise NotAuthenticated(
            f"a {role.value} needs a valid {mapping.domain_claim} claim naming their domain"
        )
    if role not in _DOMAIN_BOUND and role is not Role.OPERATOR:
        domain = None
    # Group names that could never appear in a scope are dropped, not refused: IdPs carry many groups.
    groups = sorted({g for g in _strings(claims.get(mapping.groups_claim)) if _NAME.fullmatch(g)})
    return Principal(name=name, role=role, domain=domain, groups=tuple(groups))
