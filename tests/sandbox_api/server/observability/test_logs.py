"""Structured logs: every request has an id, echoed back and written on each of its log lines."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sandbox_api.cli.main import app as cli
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.observability.logs import JsonFormatter
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import bearer
from tests.sandbox_api.live_gateway import serve_gateway
from tests.sandbox_api.server.observability.conftest import Observed

HEX_ID = re.compile(r"[0-9a-f]{32}")


class Lines(logging.Handler):
    """The JSON lines the gateway would write, as the formatter makes them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    handler, logger = Lines(), logging.getLogger("sandbox_api.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # through setLevel: it clears the logger's cache of enabled levels
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_callers_request_id_is_echoed_and_written_on_its_log_line(
    observed: Observed, access_lines: Lines
) -> None:
    api = observed.api
    answer = api.client.get("/v1/whoami", headers={**api.h("alice"), "X-Request-ID": "lb-7f3a.2"})
    assert answer.headers["X-Request-ID"] == "lb-7f3a.2"
    (line,) = [line for line in access_lines.lines if line.get("request_id") == "lb-7f3a.2"]
    assert line["route"] == "/v1/whoami"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert line["level"] == "info"
    assert isinstance(line["duration_ms"], float)


def test_a_missing_or_implausible_id_is_replaced_by_a_fresh_one(observed: Observed) -> None:
    api = observed.api
    made = api.client.get("/livez").headers["X-Request-ID"]
    assert HEX_ID.fullmatch(made)
    forged = api.client.get("/livez", headers={"X-Request-ID": 'x" injected="1'}).headers["X-Request-ID"]
    assert HEX_ID.fullmatch(forged)
    assert forged != made


def test_log_lines_name_the_route_template_not_the_ids_in_the_path(
    observed: Observed, access_lines: Lines
) -> None:
    api = observed.api
    job_id = "0" * 32
    api.client.get(f"/v1/jobs/{job_id}", headers={**api.h("alice"), "X-Request-ID": "tmpl-1"})
    (line,) = [line for line in access_lines.lines if line.get("request_id") == "tmpl-1"]
    assert line["route"] == "/v1/jobs/{job_id}"
    assert line["status"] == 404
    assert job_id not in json.dumps(line)


def test_a_logged_exception_gives_its_type_never_its_text() -> None:
    try:
        raise ValueError("income of P0042 is 81234.50")
    except ValueError:
        record = logging.getLogger("sandbox_api.test").makeRecord(
            "sandbox_api.test", logging.ERROR, __file__, 1, "job failed", (), exc_info=True
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert json.loads(line)["exception"] == "ValueError"
    assert "P0042" not in line
    assert "81234" not in line


def test_sandbox_serve_writes_json_lines_and_the_system_commands_probe_and_scrape(tmp_path: Path) -> None:
    admin = init_deployment(Settings(state_dir=tmp_path / "state")).admin_token
    assert admin is not None
    log = tmp_path / "gateway.log"
    with serve_gateway(tmp_path / "state", settings={"SANDBOX_WARM_SANDBOXES": "0"}, log_to=log) as url:
        echoed = httpx.get(f"{url}/v1/whoami", headers={**bearer(admin), "X-Request-ID": "live-42"})
        assert echoed.headers["X-Request-ID"] == "live-42"
        health = CliRunner().invoke(cli, ["system", "health", "--url", url, "--json"])
        assert health.exit_code == 0, health.output
        shown = json.loads(health.stdout)
        assert shown["ready"] == "ready"
        assert shown["database"] == shown["executor"] == shown["runner"] == "ok"
        scraped = CliRunner().invoke(cli, ["system", "metrics", "--url", url, "--token", admin])
        assert scraped.exit_code == 0, scraped.output
        assert "sandbox_queue_depth 0.0" in scraped.stdout
    lines = [json.loads(text) for text in log.read_text().splitlines() if text.startswith("{")]
    assert lines, log.read_text()
    (access,) = [line for line in lines if line.get("request_id") == "live-42"]
    assert access["logger"] == "sandbox_api.access"
    assert access["route"] == "/v1/whoami"
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's own lines are JSON too


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_serve_logging_configuration_applies_in_a_fresh_process(log_format: str) -> None:
    # In a child process: the configuration replaces the process's logging, which a test must not do here.
    program = (
        "import logging, logging.config\n"
        "from sandbox_api.server.observability.logs import REQUEST_ID, logging_config\n"
        f"logging.config.dictConfig(logging_config({log_format!r}, 'info'))\n"
        "REQUEST_ID.set('req-7')\n"
        "logging.getLogger('sandbox_api.test').info('hello %s', 'there')\n"
        "logging.getLogger('sandbox_api.test').debug('not at info')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    (line,) = done.stderr.splitlines()
    if log_format == "json":
        parsed = json.loads(line)
        assert parsed["message"] == "hello there"
        assert parsed["request_id"] == "req-7"
        assert parsed["logger"] == "sandbox_api.test"
    else:
        assert line.endswith("INFO sandbox_api.test: hello there [request req-7]")
