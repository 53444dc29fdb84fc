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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright

from sandbox_api.server.console.session import COOKIE
from tests.sandbox_api.api_helpers import (
    DOMAIN,
    GOOD_SQL,
    SCOPE,
    World,
    citizens_table,
    csv_bytes,
    scope_yaml,
    world,
)
from tests.sandbox_api.local_issuer import AUDIENCE, local_issuer
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


@contextmanager
def serving(api: World) -> Iterator[str]:
    """The world's app, already started by its test client, served on loopback for the browser too."""
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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with replayed_world(tmp_path_factory.mktemp("state")) as api:
        ensure_python_world(api)
        with serving(api) as url, sync_playwright() as playwright:
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
                yield Live(api, url, browser)
            finally:
                browser.close()


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


def _approve_button(page: Page, version: str) -> Locator:
    return page.locator(f"section.scope:has(code:text-is('{version[:12]}'))").get_by_role(
        "button", name="Approve"
    )


def test_officers_write_fix_and_approve_a_scope_four_eyes_reading_the_diff(live: Live) -> None:
    name = "browser-study"
    olga = Desk(live, "olga")
    page = olga.go("/console/scopes")
    typo = scope_yaml(name=name).replace("min_units:", "min_unitz:")
    typo_line = next(i for i, line in enumerate(typo.splitlines(), 1) if "min_unitz" in line)
    editor = page.get_by_label("Scope document (YAML)")
    editor.fill(typo)  # checked as typed: htmx posts the document after a pause
    check = page.locator("#scope-check")
    expect(check).to_contain_text("The document has problems")
    expect(check.locator(".findings li").first).to_contain_text(f"line {typo_line}")
    expect(check).to_contain_text("min_unitz")
    olga.shot("officer-editor-problem")
    editor.fill(scope_yaml(name=name))
    expect(check).to_contain_text("The document is valid.")
    page.get_by_role("button", name="Propose").click()
    first = _pending_version(live.api, name)
    expect(page.locator(f"section.scope:has(code:text-is('{first[:12]}'))")).to_contain_text("pending")

    # Four eyes: the author's own approval is refused by the service and nothing changes.
    _approve_button(page, first).click()
    expect(page.locator("p.error[role=alert]")).to_contain_text("403")
    assert _pending_version(live.api, name) == first

    oscar = Desk(live, "oscar")
    _approve_button(oscar.go("/console/scopes"), first).click()
    expect(oscar.page).to_have_url(re.compile(r"/console/scopes$"))
    assert _state_of(live.api, name, first) == "approved"

    # A second version: the approving officer reads what changed before approving it.
    olga.go("/console/scopes")
    page.get_by_label("Scope document (YAML)").fill(scope_yaml(name=name, min_units=12))
    expect(check).to_contain_text("The document is valid.")
    page.get_by_role("button", name="Propose").click()
    second = _pending_version(live.api, name)
    oscar.go("/console/scopes")
    section = oscar.page.locator(f"section.scope:has(code:text-is('{second[:12]}'))")
    changed = section.locator("pre.diff span", has_text="min_units")
    expect(changed).to_have_text(['-    "min_units": 10,', '+    "min_units": 12,'])
    expect(changed.first).to_have_class("removed")
    expect(changed.last).to_have_class("added")
    oscar.shot("officer-approves-with-diff")
    section.get_by_label("Reason").fill("k raised to 12, checked")
    section.get_by_role("button", name="Approve").click()
    expect(oscar.page).to_have_url(re.compile(r"/console/scopes$"))
    assert _state_of(live.api, name, second) == "approved"
    assert olga.violations == []
    assert oscar.violations == []
    olga.close()
    oscar.close()
    approvals = [e for e in live.api.audit_events("scope.") if e["details"].get("version") == second]
    assert any(e["actor"] == "oscar" for e in approvals)


def _pending_version(api: World, name: str) -> str:
    scope = api.client.get(f"/v1/scopes/{name}", headers=api.h("olga")).json()
    return str(next(v["version_id"] for v in scope["versions"] if v["state"] == "pending"))


def _state_of(api: World, name: str, version: str) -> str:
    scope = api.client.get(f"/v1/scopes/{name}", headers=api.h("olga")).json()
    return str(next(v["state"] for v in scope["versions"] if v["version_id"] == version))


def test_auditor_reads_the_verified_chain_replays_a_job_and_exports(live: Live) -> None:
    submitted = live.api.client.post(
        "/v1/jobs", headers=live.api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL}
    )
    job_id = submitted.json()["job_id"]
    assert live.api.wait(job_id)["state"] == "released"

    desk = Desk(live, "audra")
    page = desk.go("/console/audit")
    expect(page.locator("#chain-status")).to_have_text(re.compile(r"^Verified from genesis: [\d,]+ events"))
    page.get_by_role("textbox", name=re.compile(r"^Event")).fill("job.released")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"event=job.released"))
    rows = page.locator("#audit-events tbody tr")
    expect(rows.first).to_be_visible()
    assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"job.released"}
    desk.shot("auditor-timeline")

    row = rows.filter(has_text=job_id)
    row.get_by_role("link", name="open").click()
    expect(page).to_have_url(re.compile(f"/console/jobs/{job_id}$"))
    page.get_by_role("button", name="Replay this job").click()
    expect(page.locator("#replay [role=status]")).to_contain_text("Replay outcome: match")
    desk.shot("auditor-replay")

    desk.go("/console/audit")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("^Export the whole chain")).click()
    exported = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert any(e["event"] == "job.replayed" and e["details"].get("job") == job_id for e in exported)
    assert [e["seq"] for e in exported] == sorted(e["seq"] for e in exported)
    assert desk.violations == []
    desk.close()


def test_admin_issues_a_token_shown_once_rotates_a_key_and_revokes(live: Live) -> None:
    desk = Desk(live, "admin")
    page = desk.go("/console/admin")
    page.locator("#p-name").fill("tess-browser")
    page.get_by_label("Role").select_option("auditor")
    page.locator("form:has(#p-name)").get_by_role("button", name="Create").click()
    first = page.locator("#issued-token code").inner_text()

    row = page.locator("tr", has=page.locator("td:text-is('tess-browser')"))
    row.get_by_role("button", name="Issue a token").click()
    issued = page.locator("#issued-token code")
    expect(issued).to_have_text(re.compile(r"^sbx_"))
    token = issued.inner_text()
    assert token != first
    desk.shot("admin-token-issued")
    desk.go("/console/admin")  # shown once: not on the page any more
    expect(page.locator("#issued-token")).to_have_count(0)
    assert token not in page.content()
    bearer = {"Authorization": f"Bearer {token}"}
    assert live.api.client.get("/v1/whoami", headers=bearer).json()["name"] == "tess-browser"

    domain = page.locator("tr", has=page.locator(f"td:text-is('{DOMAIN}')"))
    before = domain.locator("code").inner_text()
    domain.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_role("status")).to_contain_text("Key rotated:")
    after = page.locator("tr", has=page.locator(f"td:text-is('{DOMAIN}')")).locator("code").inner_text()
    assert after != before

    row = page.locator("tr", has=page.locator("td:text-is('tess-browser')"))
    row.get_by_role("button", name="Revoke every token").click()
    expect(page.locator("#revoked")).to_contain_text("tess-browser")
    assert live.api.client.get("/v1/whoami", headers=bearer).status_code == 401
    assert live.api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert desk.violations == []
    desk.close()
    events = {e["event"] for e in live.api.audit_events() if e["actor"] == "admin"}
    assert {"principal.created", "token.created", "key.rotated", "token.revoked"} <= events


PAGES: dict[str, tuple[str, ...]] = {
    "alice": (
        "/console/home",
        "/console/jobs",
        "/console/scopes",
        "/console/datasets",
        "/console/applications",
    ),
    "chad": ("/console/reviews",),
    "olga": ("/console/scopes", "/console/applications"),
    "stu": ("/console/datasets",),
    "audra": ("/console/audit", "/console/jobs", "/console/alerts"),
    "admin": ("/console/admin", "/console/alerts"),
    "dana": ("/console/admin",),
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
    # Picking the file drafts its table of the manifest from its header and first rows.
    drafted = section.locator("[data-drafted-table]")
    expect(drafted).to_be_visible(timeout=20_000)
    expect(drafted.locator("tr[data-column]")).to_have_count(6)
    expect(section.get_by_label("Type of column birth_date")).to_have_value("DATE")
    expect(section.get_by_label("Class of column person_id")).to_have_value("identifying")
    # A column the current version declares keeps its class; the steward changes one.
    expect(section.get_by_label("Class of column name")).to_have_value("identifying")
    expect(section.get_by_label("Class of column sex")).to_have_value("internal")
    section.get_by_label("Class of column sex").select_option("public")
    manifest = json.loads(section.locator("textarea[name=manifest]").input_value())
    assert {c["name"]: c["class"] for c in manifest["tables"][0]["columns"]}["sex"] == "public"
    serious = [v for v in _axe(page) if v["impact"] in ("serious", "critical")]
    assert serious == [], [v["id"] for v in serious]
    section.get_by_role("button", name="Upload").click()
    status = section.get_by_role("status")
    expect(status).to_contain_text("Stored a new version", timeout=30_000)
    expect(section.locator("progress")).to_have_attribute("value", "100")
    desk.shot("steward-upload")
    assert desk.violations == []
    short_id = status.locator("code").first.text_content() or ""
    posted_to = section.locator("form[hx-encoding]").get_attribute("hx-post") or ""
    desk.close()
    # The stored manifest carries the class the steward chose in the drafted table.
    dataset = posted_to.removeprefix("/console/datasets/").removesuffix("/versions")
    found = live.api.client.get(f"/v1/datasets/{dataset}", headers=live.api.h("stu")).json()
    version = next(v for v in found["versions"] if v["version_id"].startswith(short_id))
    classes = {c["name"]: c["class"] for t in version["tables"] for c in t["columns"]}
    assert (classes["sex"], classes["name"], classes["person_id"]) == ("public", "identifying", "identifying")


def test_sign_in_by_redirect_to_an_issuer_on_another_site(
    live: Live, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The issuer goes by "localhost", the console by 127.0.0.1: two sites, so the browser comes back
    # with a cross-site navigation and withholds SameSite=Strict cookies on it, as it would in production.
    with (
        local_issuer(host="localhost") as issuer,
        world(
            tmp_path_factory.mktemp("sso-state"),
            oidc_issuer=issuer.url,
            oidc_audience=AUDIENCE,
            oidc_jwks_url=issuer.jwks_url,
            oidc_role_map={"analyst": "operator"},
        ) as api,
        serving(api) as url,
    ):
        context = live.browser.new_context(locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{url}/console/sign-in")
        issuer.consent_page = True
        page.get_by_role("link", name="Sign in with single sign-on").click()
        expect(page).to_have_url(re.compile(r"^http://localhost:\d+/authorize\?"))
        page.get_by_role("button", name="Allow").click()  # the way back starts on the issuer's site
        expect(page).to_have_url(re.compile(r"/console/jobs$"))
        expect(page.locator(".who")).to_contain_text("sso-ann")
        assert issuer.token_requests
        assert "code_verifier" in issuer.token_requests[-1]
        # The flow cookie was spent at the callback: only the session cookie remains.
        names = {c["name"] for c in context.cookies()}
        assert names == {COOKIE}
        context.close()
        signed_in = [e for e in api.audit_events("console.signed_in") if e["actor"] == "sso-ann"]
        assert [e["details"]["method"] for e in signed_in] == ["sso"]


def test_a_result_over_time_is_a_line_chart_that_passes_axe_and_the_csp(live: Live) -> None:
    sql = "SELECT birth_date, COUNT(*) AS n FROM citizens GROUP BY birth_date"
    submitted = live.api.client.post(
        "/v1/jobs", headers=live.api.h("alice"), json={"scope": SCOPE, "sql": sql}
    )
    job_id = submitted.json()["job_id"]
    assert live.api.wait(job_id)["state"] == "released"
    desk = Desk(live, "alice")
    page = desk.go(f"/console/jobs/{job_id}")
    line = page.locator("svg.line-chart polyline.chart-line")
    expect(line).to_have_count(1)
    box = line.bounding_box()
    assert box is not None
    assert box["width"] > 300
    expect(page.locator("svg.chart rect")).to_have_count(0)
    desk.shot("operator-line-chart")
    serious = [v for v in _axe(page) if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=1)
    assert desk.violations == []
    desk.close()
