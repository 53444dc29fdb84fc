"""Cross-domain jobs: each domain computes on its own rows; only blinded tokens, ciphertexts, masked
sums and released cells cross (see ``docs/cross-domain.md``)."""

from executors.crossdomain.domain_party import DomainParty, new_party
from executors.crossdomain.errors import CrossDomainProtocolError, CrossDomainUnsupported
from executors.crossdomain.gateway_party import Gateway
from executors.crossdomain.plan import Aggregate, CrossDomainPlan, Function, Side, SidePlan
from executors.crossdomain.protection import Protection
from executors.crossdomain.protocol import CrossDomainRun, Transcript, run_in_process, run_plan

__all__ = [
    "Aggregate",
    "CrossDomainPlan",
    "CrossDomainProtocolError",
    "CrossDomainRun",
    "CrossDomainUnsupported",
    "DomainParty",
    "Function",
    "Gateway",
    "Protection",
    "Side",
    "SidePlan",
    "Transcript",
    "new_party",
    "run_in_process",
    "run_plan",
]
