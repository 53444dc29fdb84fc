"""Cross-domain jobs: each domain computes on its own rows; only blinded tokens, ciphertexts, masked
sums and released cells cross (see ``docs/cross-domain.md``)."""

from executors.crossdomain.errors import CrossDomainProtocolError, CrossDomainUnsupported
from executors.crossdomain.plan import Aggregate, CrossDomainPlan, Function, Side, SidePlan
from executors.crossdomain.protocol import CrossDomainRun, Transcript, run_in_process

__all__ = [
    "Aggregate",
    "CrossDomainPlan",
    "CrossDomainProtocolError",
    "CrossDomainRun",
    "CrossDomainUnsupported",
    "Function",
    "Side",
    "SidePlan",
    "Transcript",
    "run_in_process",
]
