"""Structured logs: one JSON object a line, each carrying the id of the request it belongs to.

A request's id comes from its ``request_id_header`` when that holds a plausible id (a proxy's id is kept
so its lines and ours join up) and is made up otherwise; the response echoes it. It lives in a context
variable for the request's duration, which Starlette copies into the worker thread of a synchronous
handler, so every line the request causes carries it without being passed around.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final

from opentelemetry import trace

REQUEST_ID: ContextVar[str | None] = ContextVar("sandbox_request_id", default=None)
#: What a caller's id may look like: anything else (too long, spaces, quotes) is replaced, so a log line
#: never carries text a caller chose beyond an id.
_ACCEPTABLE_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A record's own attributes, and uvicorn's terminal-coloured copy of its message: not extra fields.
_STANDARD_FIELDS: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def request_id_from(value: str | None) -> str:
    """``value`` when it is an acceptable id, else a fresh one.

    >>> request_id_from("lb-7f3a.2")
    'lb-7f3a.2'
    >>> len(request_id_from("not an id; drop table")) == 32
    True
    """
    if value is not None and _ACCEPTABLE_ID.fullmatch(value):
        return value
    return secrets.token_hex(16)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (UTC), level, logger, message, request id, trace and span ids,
    the record's extra fields, and the exception's type (never its text or traceback: a message could
    quote a value from a job's data, and logs are files)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD_FIELDS and key not in line and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a terminal: the usual line, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        return text if request_id is None else f"{text} [request {request_id}]"


def logging_config(log_format: str, log_level: str) -> dict[str, object]:
    """The ``logging.config.dictConfig`` document ``sandbox serve`` applies (and hands to uvicorn, so its
    own lines come out in the same format): one handler on standard error for the root logger; uvicorn's
    own access log is off, since ``http.Observe`` writes one line per request with its id."""
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": formatter, "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": log_level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": log_level.upper()},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": log_level.upper()},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }
