"""The web console in a real browser (Debian's Chromium driven by Playwright) against a live gateway.

One flow per desk that the console must carry end to end: an operator dry-runs, fixes and submits SQL and
reads the result, chart, suppression report and receipt; an output checker releases one output and denies
another; a steward uploads a version with a progress bar. Every page any role can open is checked with
axe-core (vendored beside this file) and must raise no Content-Security-Policy violation; /docs and
/redoc render with every request to another host blocked. Screenshots are kept under
``build/console-screenshots``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, citizens_table, csv_bytes
from tests.sandbox_api.python_job_helpers import PY_ONE, ensure_python_world, submit
from tests.sandbox_api.replay_helpers import replayed_world

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "assets" / "axe-4.14.1.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "build" / "console-screenshots"
MODEL = "import numpy as np\nresult = {'mean': float(np.mean(citizens['income'].to_numpy()))}\n"


@dataclass(frozen=True)
class Live:
    api: World
    url: str
    browser: Browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with replayed_world(tmp_path_factory.mktemp("state")) as api:
        ensure_python_world(api)
        # The world's app, already started by its test client, served on loopback for the browser too.
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(api.client.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the console's server did not start"
            time.sleep(0.05)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                        "--disable-background-networking",
                    ],
                )
                try:
                    yield Live(api, f"http://127.0.0.1:{port}", browser)
                finally:
                    browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)


class Desk:
    """One browser context signed in as one principal; collects CSP violations as they happen."""

    def __init__(self, live: Live, who: str) -> None:
        self.live = live
        self.context = live.browser.new_context(locale="en-GB")
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.violations: list[str] = []
        self.page.on("console", self._console)
        self.page.goto(f"{live.url}/console")
        expect(self.page).to_have_url(re.compile(r"/console/sign-in$"))
        self.page.get_by_label("Token").fill(live.api.tokens[who])
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator(".who")).to_contain_text(who)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(message.text)

    def go(self, path: str) -> Page:
        self.page.goto(self.live.url + path)
        return self.page

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def test_operator_fixes_a_refused_query_submits_it_and_reads_the_release(live: Live) -> None:
    desk = Desk(live, "alice")
    page = desk.go("/console/jobs")
    page.get_by_label("Scope").select_option(SCOPE)
    page.get_by_label("SQL or Python code").fill("SELECT name, COUNT(*) AS n FROM citizens GROUP BY name")
    page.get_by_role("button", name="Dry run").click()
    refused = page.locator("#dry-run")
    expect(refused).to_contain_text("Refused")
    expect(refused.locator("mark").first).to_have_text(re.compile(r"^name"))  # the finding, on its fragment
    expect(refused.locator(".findings li").first).to_contain_text("column_denied")
    desk.shot("operator-dry-run")

    page.get_by_label("SQL or Python code").fill(GOOD_SQL)
    page.get_by_role("button", name="Dry run").click()
    expect(refused).to_contain_text("Allowed")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#job-state")).to_have_text("released", timeout=60_000)  # live state, polled by htmx
    expect(page.locator("#result-table tbody tr")).to_have_count(5)
    expect(page.locator("svg.chart rect")).to_have_count(5)
    expect(page.locator("#suppression-report")).to_contain_text("min_units")
    expect(page.locator("#receipt")).to_contain_text("signature")
    desk.shot("operator-result")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert Path(download.value.path()).read_text().startswith("district,n,avg_income")

    # The same page in Chinese: the switch is a form, the choice a cookie; numbers and dates localised.
    page.get_by_role("button", name="简体中文").click()
    expect(page.locator("#job-state")).to_have_text("已发布")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    desk.shot("operator-result-zh")
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    assert desk.violations == []
    desk.close()
    events = [(e["event"], e["actor"]) for e in live.api.audit_events("console.")]
    assert ("console.signed_in", "alice") in events
    assert ("console.signed_out", "alice") in events


def test_output_checker_releases_one_output_and_denies_another(live: Live) -> None:
    jobs = []
    for _ in range(2):
        answer = submit(live.api, {"scope": PY_ONE, "kind": "python", "code": MODEL})
        assert answer.status_code == 202, answer.text
        jobs.append(live.api.wait(answer.json()["job_id"])["job_id"])
    assert all(live.api.wait(j)["state"] == "withheld" for j in jobs)

    desk = Desk(live, "chad")
    page = desk.go("/console/reviews")
    for job_id in jobs:
        expect(page.get_by_role("link", name=job_id[:12])).to_be_visible()
    desk.shot("checker-queue")

    page.get_by_role("link", name=jobs[0][:12]).click()
    expect(page.locator("#review-state")).to_contain_text("withheld")
    page.get_by_label(re.compile("^Reason")).fill("one mean over the whole register: safe")
    desk.shot("checker-review")
    page.get_by_role("button", name="Release").click()
    expect(page.locator("#review-state")).to_have_text("released")

    desk.go(f"/console/reviews/{jobs[1]}")
    page.get_by_label(re.compile("^Reason")).fill("please aggregate by district first")
    page.get_by_role("button", name="Deny").click()
    expect(page.locator("#review-state")).to_have_text("denied")
    assert desk.violations == []
    desk.close()

    released, denied = (live.api.wait(j) for j in jobs)
    assert (released["state"], denied["state"]) == ("released", "denied")
    assert "please aggregate by district first" in denied["reason"]


PAGES: dict[str, tuple[str, ...]] = {
    "alice": ("/console/home", "/console/jobs", "/console/scopes", "/console/datasets"),
    "chad": ("/console/reviews",),
    "olga": ("/console/scopes",),
    "stu": ("/console/datasets",),
    "audra": ("/console/audit", "/console/jobs"),
    "admin": ("/console/admin",),
}


def _axe(page: Page) -> list[dict[str, Any]]:
    # Evaluated through the debugging protocol: the page's own CSP still forbids any inline script.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return found


def test_every_page_passes_axe_and_its_content_security_policy(live: Live) -> None:
    problems: dict[str, Any] = {}
    signed_out = live.browser.new_context()
    page = signed_out.new_page()
    for path in ("/console/sign-in", "/console/open-data"):  # the pages open to everyone
        page.goto(f"{live.url}{path}")
        serious = [v for v in _axe(page) if v["impact"] in ("serious", "critical")]
        if serious:
            problems[path] = serious
    signed_out.close()
    for who, paths in PAGES.items():
        desk = Desk(live, who)
        for path in paths:
            page = desk.go(path)
            serious = [v for v in _axe(page) if v["impact"] in ("serious", "critical")]
            if serious:
                problems[f"{who} {path}"] = serious
            desk.shot(f"{who}{path.replace('/', '-')}")
        if desk.violations:
            problems[f"{who} csp"] = desk.violations
        desk.close()
    assert problems == {}, json.dumps(problems, indent=1)


def test_the_api_docs_render_with_nothing_from_outside(live: Live) -> None:
    context = live.browser.new_context()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith(live.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.goto(f"{live.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Data Sandbox", timeout=20_000)
    page.goto(f"{live.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Data Sandbox", timeout=20_000)
    context.close()
    assert outside == []


def test_steward_uploads_a_version_with_a_progress_bar(live: Live) -> None:
    desk = Desk(live, "stu")
    page = desk.go("/console/datasets")
    section = page.locator("section.dataset").first
    section.locator("details.upload summary").click()
    section.locator("input[type=file]").set_input_files(
        files=[
            {
                "name": "citizens.csv",
                "mimeType": "text/csv",
                "buffer": csv_bytes(citizens_table(400, seed=11)),
            }
        ]
    )
    section.get_by_role("button", name="Upload").click()
    expect(section.get_by_role("status")).to_contain_text("Stored a new version", timeout=30_000)
    expect(section.locator("progress")).to_have_attribute("value", "100")
    desk.shot("steward-upload")
    assert desk.violations == []
    desk.close()
