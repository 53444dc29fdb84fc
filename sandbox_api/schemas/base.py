"""Shared pieces of the API's bodies: the request and response bases, name rules, limits."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

# The longest long-poll a client may ask for (``GET /v1/jobs/{id}?wait=``), in seconds.
JOB_WAIT_MAX_S = 30

# Names of domains, principals, groups and datasets. Written into the OpenAPI document so that clients
# can check a name before sending it; the service checks it (and says what is allowed when it is not).
NAME_REGEX = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME: dict[str, Any] = {"pattern": NAME_REGEX}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
