"""Typed errors of cross-domain jobs (``executors.crossdomain``).

Every error has a stable ``code``; messages say what to change, and never carry a unit id or a value.
"""

from __future__ import annotations

from executors.errors import ExecutionError


class CrossDomainUnsupported(ExecutionError):
    """The job asks for something the private join cannot compute exactly; the message says what to ask."""

    code = "cross-domain-unsupported"


class CrossDomainProtocolError(ExecutionError):
    """A message of the protocol is malformed or does not fit the step it arrived at."""

    code = "cross-domain-protocol-error"
