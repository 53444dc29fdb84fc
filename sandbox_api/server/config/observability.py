"""Logs, metrics and traces."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class ObservabilitySettings(BaseSettings):
    """One part of ``Settings`` (``server/settings.py``)."""

    log_format: Literal["json", "text"] = Field(
        "json",
        description=(
            "Log lines of `sandbox serve`: `json` (one JSON object a line: time, level, logger, message, "
            "the request id, and the trace and span ids when tracing is on) or `text` (for a terminal)."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description=("Lowest level of the log lines `sandbox serve` writes (standard error)."),
    )
    request_id_header: str = Field(
        "X-Request-ID",
        min_length=1,
        description=(
            "Header that carries a request's id: taken from the request when it holds 1 to 64 letters, "
            "digits, `.`, `_` or `-` (so a proxy's id is kept), made up otherwise; echoed in the response "
            "and written on every log line of the request."
        ),
    )
    metrics_enabled: bool = Field(
        True,
        description=(
            "Collect Prometheus metrics and serve them at `GET /metrics` (admin or auditor token). Off: "
            "nothing is collected and `/metrics` answers 404."
        ),
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=(
            "Also serve the metrics without a token on `127.0.0.1:<metrics_port>` (loopback only), for a "
            "scraper or agent on the same machine. Unset: only the protected `/metrics` route."
        ),
    )
    trace_exporter: Literal["off", "console"] = Field(
        "off",
        description=(
            "Where OpenTelemetry spans go: `off` (none are recorded) or `console` (one JSON document per "
            "span on standard output, for a log shipper or a collector's file receiver). Spans follow a "
            "request through the gateway, the job runner and the executor (docs/operations.md)."
        ),
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of traces recorded when `trace_exporter` is on (0 to 1); a request that arrives with a "
            "sampled W3C `traceparent` is always recorded."
        ),
    )
