"""The web console's sessions, CSRF, headers, languages and visibility, without a browser.

The browser flows are in ``test_console_browser.py``; which role may open which page is in the role
matrix (``CONSOLE``)."""

from __future__ import annotations

import html
import importlib.util
import io
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from sqlalchemy import update

from sandbox_api.server.app import create_app
from sandbox_api.server.console.rendering import CSP
from sandbox_api.server.console.session import COOKIE, SessionKeys
from sandbox_api.server.store.models import AuditEventRow
from tests.sandbox_api.api_helpers import (
    DOMAIN,
    GOOD_SQL,
    SCOPE,
    World,
    citizens_table,
    csv_bytes,
    parquet_bytes,
    scope_yaml,
    upload,
    world,
)
from tests.sandbox_api.console_helpers import ConsoleSession, anonymous, session_cookie, sign_in
from tests.sandbox_api.python_job_helpers import PY_ONE, ensure_python_world

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "sandbox_api" / "server" / "console" / "templates"


def _catalog_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("console_catalog", ROOT / "scripts" / "console_catalog.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_session_cookie_is_host_only_secure_httponly_and_strict(api: World) -> None:
    page = api.client.get("/console/sign-in")
    cookie = next(h for h in page.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert not any(flag.startswith("domain=") for flag in flags)


def test_every_page_carries_a_strict_content_security_policy(api: World) -> None:
    page = api.client.get("/console/sign-in")
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP
    assert "'unsafe-eval'" not in CSP
    assert page.headers["x-frame-options"] == "DENY"


def test_no_template_has_inline_script_style_or_handler() -> None:
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"\sstyle=", text), template
        assert not re.search(r"<style", text), template
        assert not re.search(r"\son[a-z]+=|hx-on", text), template


def test_every_template_string_is_translated_and_the_compiled_catalogue_is_current() -> None:
    assert _catalog_script().problems() == []


def test_a_tampered_or_foreign_cookie_is_a_signed_out_visitor(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    flipped = alice.cookie[:-6] + ("A" if alice.cookie[-6] != "A" else "B") + alice.cookie[-5:]
    foreign = SessionKeys(seal_key=b"k" * 32, csrf_key=b"c" * 32)
    forged = foreign.dump(foreign.new_session(now=4e9, token=api.tokens["admin"]))
    for cookie in (flipped, forged, "", "not-base64!"):
        answer = ConsoleSession(cookie=cookie, csrf=alice.csrf).get(api.client, "/console/home")
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/sign-in")


def test_a_wrong_token_is_refused_and_audited(api: World) -> None:
    before = len(api.audit_events("auth.failed"))
    answer = anonymous(api.client).post(api.client, "/console/sign-in", {"token": "sbx_not-a-real-token"})
    assert answer.status_code == 401
    assert "unknown or revoked" in answer.text
    assert len(api.audit_events("auth.failed")) == before + 1


def test_sign_in_and_out_are_audited_and_a_copied_cookie_dies_at_sign_out(api: World) -> None:
    olga = sign_in(api.client, api.tokens["olga"])
    out = olga.post(api.client, "/console/sign-out")
    assert (out.status_code, out.headers["location"]) == (303, "/console/sign-in")
    assert session_cookie(out) != olga.cookie
    assert olga.get(api.client, "/console/home").headers["location"] == "/console/sign-in"
    events = [(e["event"], e["actor"]) for e in api.audit_events("console.")]
    assert ("console.signed_in", "olga") in events
    assert ("console.signed_out", "olga") in events


def test_a_cookie_copied_before_sign_out_dies_on_every_gateway_of_the_database(api: World) -> None:
    """Another gateway process on the same database (a second app here) refuses the copy too."""
    with TestClient(create_app(api.settings), raise_server_exceptions=True) as other:
        olga = sign_in(api.client, api.tokens["olga"])
        assert olga.get(other, "/console/home").status_code == 200  # one session, both gateways
        assert olga.post(api.client, "/console/sign-out").status_code == 303
        assert olga.get(other, "/console/home").headers["location"] == "/console/sign-in"
        # A session that was not signed out still works there.
        oscar = sign_in(api.client, api.tokens["oscar"])
        assert oscar.get(other, "/console/home").status_code == 200


def test_signing_in_replaces_the_anonymous_session(api: World) -> None:
    visitor = anonymous(api.client)
    answer = visitor.post(api.client, "/console/sign-in", {"token": api.tokens["audra"]})
    # A session planted before sign-in (session fixation) is not the one that is signed in.
    assert session_cookie(answer) != visitor.cookie
    assert visitor.get(api.client, "/console/home").headers["location"] == "/console/sign-in"


def test_revoking_a_principals_tokens_ends_their_console_sessions(api: World) -> None:
    created = api.client.post(
        "/v1/principals", headers=api.h("admin"), json={"name": "temp-console", "role": "auditor"}
    ).json()
    session = sign_in(api.client, created["token"])
    assert session.get(api.client, "/console/audit").status_code == 200
    api.client.delete("/v1/principals/temp-console/tokens", headers=api.h("admin"))
    assert session.get(api.client, "/console/audit").headers["location"] == "/console/sign-in"


def test_an_operator_never_sees_another_operators_job(api: World) -> None:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = submitted.json()["job_id"]
    api.wait(job_id)
    bob = sign_in(api.client, api.tokens["bob"])
    assert bob.get(api.client, f"/console/jobs/{job_id}").status_code == 404
    assert bob.get(api.client, f"/console/jobs/{job_id}/result.csv").status_code == 404
    assert job_id[:12] not in bob.get(api.client, "/console/jobs").text
    # Its owner gets the same CSV the API's result holds.
    alice = sign_in(api.client, api.tokens["alice"])
    csv_text = alice.get(api.client, f"/console/jobs/{job_id}/result.csv").text
    result = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).json()
    assert csv_text.splitlines()[0] == ",".join(result["columns"])
    assert len(csv_text.splitlines()) == result["row_count"] + 1
    # The receipt is verified on the page: for the owner against the table, for an auditor the signature.
    assert "the table above is the one it signed" in alice.get(api.client, f"/console/jobs/{job_id}").text
    audra = sign_in(api.client, api.tokens["audra"])
    audited = audra.get(api.client, f"/console/jobs/{job_id}").text
    assert "Signature verified with key" in audited
    assert 'id="result-table"' not in audited


def test_the_dry_run_marks_each_finding_on_its_fragment(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    sql = "SELECT name, COUNT(*) AS n FROM citizens GROUP BY name"
    answer = alice.post(api.client, "/console/jobs/check", {"scope": SCOPE, "sql": sql})
    assert answer.status_code == 200
    assert re.search(r"<mark [^>]*>name<sup>\d</sup></mark>", answer.text)
    assert "column_denied" in answer.text


def test_the_language_follows_the_browser_then_the_switch(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    chinese = api.client.get("/console/jobs", headers={**alice.headers, "Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-Hans">' in chinese.text
    assert "我的作业" in chinese.text
    switched = alice.post(api.client, "/console/language", {"to": "en", "back": "/console/jobs"})
    assert switched.headers["location"] == "/console/jobs"
    lang_cookie = next(h for h in switched.headers.get_list("set-cookie") if "sbx_lang=en" in h)
    assert "HttpOnly" in lang_cookie
    assert "Secure" in lang_cookie


def test_the_language_switch_never_redirects_off_the_console(api: World) -> None:
    alice = sign_in(api.client, api.tokens["alice"])
    for back in ("//evil.example/console", "https://evil.example/", "/v1/whoami", "/console\\..\\x"):
        answer = alice.post(api.client, "/console/language", {"to": "zh", "back": back})
        assert answer.headers["location"] == "/console", back


def test_forms_are_accepted_on_console_paths_only(api: World) -> None:
    answer = api.client.post("/v1/jobs/check", headers=api.h("alice"), data={"scope": SCOPE, "sql": GOOD_SQL})
    assert answer.status_code == 415


def test_the_owner_downloads_the_same_rows_as_parquet(api: World) -> None:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = submitted.json()["job_id"]
    api.wait(job_id)
    alice = sign_in(api.client, api.tokens["alice"])
    table = pq.read_table(io.BytesIO(alice.get(api.client, f"/console/jobs/{job_id}/result.parquet").content))
    result = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).json()
    assert table.column_names == result["columns"]
    assert [list(row.values()) for row in table.to_pylist()] == result["rows"]


def test_officers_edit_check_and_approve_a_scope_with_four_eyes_and_a_diff(api: World) -> None:
    olga = sign_in(api.client, api.tokens["olga"])
    typo = scope_yaml(name="console-study").replace("min_units:", "min_unitz:")
    checked = olga.post(api.client, "/console/scopes/check", {"document": typo})
    assert "The document has problems" in checked.text
    assert "min_unitz" in checked.text
    typo_line = typo.splitlines().index(next(x for x in typo.splitlines() if "min_unitz" in x)) + 1
    assert f"<strong>line {typo_line}</strong>" in checked.text
    first = scope_yaml(name="console-study")
    assert olga.post(api.client, "/console/scopes", {"document": first}).status_code == 303
    oscar = sign_in(api.client, api.tokens["oscar"])
    version = _pending_version(api, "console-study")
    approve = f"/console/scopes/console-study/versions/{version}/approve"
    # Four eyes: the author's own approval is refused by the service, as on the API.
    assert olga.post(api.client, approve, {"reason": "mine"}).status_code == 403
    assert oscar.post(api.client, approve, {"reason": "checked"}).status_code == 303

    second = olga.post(
        api.client, "/console/scopes", {"document": scope_yaml(name="console-study", min_units=12)}
    )
    assert second.status_code == 303, second.text[-1500:]
    page = oscar.get(api.client, "/console/scopes").text
    assert '<span class="removed">-    &#34;min_units&#34;: 10,</span>' in page
    assert '<span class="added">+    &#34;min_units&#34;: 12,</span>' in page


def _pending_version(api: World, name: str) -> str:
    scope = api.client.get(f"/v1/scopes/{name}", headers=api.h("olga")).json()
    return str(next(v["version_id"] for v in scope["versions"] if v["state"] == "pending"))


def test_an_operator_submits_a_python_job_that_waits_for_a_checker(api: World) -> None:
    ensure_python_world(api)
    alice = sign_in(api.client, api.tokens["alice"])
    code = "import numpy as np\nresult = {'mean': float(np.mean(citizens['income'].to_numpy()))}\n"
    answer = alice.post(api.client, "/console/jobs", {"scope": PY_ONE, "kind": "python", "sql": code})
    assert answer.status_code == 303
    job_id = answer.headers["location"].rsplit("/", 1)[1]
    assert api.wait(job_id)["state"] == "withheld"
    assert "withheld for review" in alice.get(api.client, answer.headers["location"]).text


def test_the_api_docs_load_only_vendored_assets(api: World) -> None:
    for page in ("/docs", "/redoc"):
        html = api.client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        assert all(a.startswith("/console/static/apidocs/") for a in assets), assets
        assert all(api.client.get(a).status_code == 200 for a in assets)


def test_a_steward_crypto_shreds_a_version_only_after_typing_its_id(api: World) -> None:
    created = api.client.post(
        "/v1/datasets", headers=api.h("stu"), json={"domain": DOMAIN, "name": "shred-me"}
    )
    assert created.status_code == 201, created.text
    stored = upload(api.client, api.tokens["stu"], dataset="shred-me", reviewer=api.tokens["sam"])
    version = stored.json()["version"]["version_id"]
    stu = sign_in(api.client, api.tokens["stu"])
    path = f"/console/datasets/{DOMAIN}/shred-me/versions/{version}/shred"
    slip = stu.post(api.client, path, {"confirm": "yes", "reason": "consent withdrawn"})
    assert slip.status_code == 422
    assert version[:12] in slip.text
    assert (
        api.client.get(f"/v1/datasets/{DOMAIN}/shred-me", headers=api.h("stu")).json()["versions"][0]["state"]
        == "active"
    )
    done = stu.post(api.client, path, {"confirm": version[:12], "reason": "consent withdrawn"})
    assert done.status_code == 303
    dataset = api.client.get(f"/v1/datasets/{DOMAIN}/shred-me", headers=api.h("stu")).json()
    assert dataset["versions"][0]["state"] == "shredded"
    assert any(e["actor"] == "stu" for e in api.audit_events("dataset.version.shredded"))


def test_a_steward_uploads_a_version_from_the_drafted_manifest(api: World) -> None:
    api.client.post("/v1/datasets", headers=api.h("stu"), json={"domain": DOMAIN, "name": "upload-me"})
    upload(api.client, api.tokens["stu"], dataset="upload-me")
    stu = sign_in(api.client, api.tokens["stu"])
    page = stu.get(api.client, "/console/datasets").text
    drafted = re.search(r'name="manifest"[^>]*>([^<]*)</textarea>', page[page.index("upload-me") :])
    assert drafted is not None
    manifest = html.unescape(drafted.group(1))
    files = {"citizens": ("c.csv", csv_bytes(citizens_table(300, seed=3)), "text/csv")}
    path = f"/console/datasets/{DOMAIN}/upload-me/versions"
    # The token travels in a header: the multipart body is streamed to the upload, never parsed twice.
    without = api.client.post(path, headers=stu.headers, data={"manifest": manifest}, files=files)
    assert without.status_code == 403
    answer = api.client.post(
        path, headers={**stu.headers, "X-CSRF-Token": stu.csrf}, data={"manifest": manifest}, files=files
    )
    assert answer.status_code == 200, answer.text
    assert "Stored a new version" in answer.text
    versions = api.client.get(f"/v1/datasets/{DOMAIN}/upload-me", headers=api.h("stu")).json()["versions"]
    assert len(versions) == 2
    # Another domain's steward is refused by the same gate as on the API.
    cleo = sign_in(api.client, api.tokens["cleo"])
    refused = api.client.post(
        path, headers={**cleo.headers, "X-CSRF-Token": cleo.csrf}, data={"manifest": manifest}, files=files
    )
    assert refused.status_code == 403


def _drafted(page: str) -> dict[str, tuple[str, str]]:
    """Each drafted column's selected type and class, from the fragment."""
    rows = re.findall(r'<tr data-column="(\w+)">(.*?)</tr>', page, re.S)
    chosen = {}
    for column, row in rows:
        picks = re.findall(r'<option value="(\w+)" selected>', row)
        chosen[column] = (picks[0], picks[1])
    return chosen


def _draft(api: World, who: ConsoleSession, sample: bytes, query: str, *, name: str = "draft-me") -> Any:
    path = f"/console/datasets/{DOMAIN}/{name}/draft-manifest?{query}"
    headers = {**who.headers, "X-CSRF-Token": who.csrf, "Content-Type": "application/octet-stream"}
    return api.client.post(path, headers=headers, content=sample)


def test_a_steward_gets_a_manifest_drafted_from_a_csv_header_and_sample(api: World) -> None:
    stu = sign_in(api.client, api.tokens["stu"])
    whole = csv_bytes(citizens_table(3000, seed=5))
    assert len(whole) > 64 * 1024
    # The browser sends the first 64 KiB: cut mid-line, the last partial row is dropped, not misread.
    answer = _draft(api, stu, whole[: 64 * 1024], "table=citizens&format=csv")
    assert answer.status_code == 200, answer.text
    assert _drafted(answer.text) == {
        "person_id": ("VARCHAR", "identifying"),
        "name": ("VARCHAR", "internal"),
        "district": ("VARCHAR", "internal"),
        "sex": ("VARCHAR", "internal"),
        "birth_date": ("DATE", "internal"),
        "income": ("DOUBLE", "internal"),
    }
    assert 'data-drafted-table="citizens"' in answer.text
    assert '<option value="person_id" selected>' in answer.text
    # Every class of the manifest is offered for every column.
    for cls in ("public", "internal", "sensitive", "identifying"):
        assert answer.text.count(f'<option value="{cls}"') == 6
    # Without the CSRF token it is refused like any console form.
    refused = api.client.post(
        f"/console/datasets/{DOMAIN}/draft-me/draft-manifest",
        headers={**stu.headers, "Content-Type": "application/octet-stream"},
        content=whole[:1000],
    )
    assert refused.status_code == 403


def test_a_manifest_is_drafted_from_a_parquet_files_tail(api: World) -> None:
    stu = sign_in(api.client, api.tokens["stu"])
    data = parquet_bytes(citizens_table(20000, seed=2))
    assert len(data) > 64 * 1024
    # Parquet keeps its schema in the footer: the browser sends the file's last bytes.
    answer = _draft(api, stu, data[-64 * 1024 :], "table=people&format=parquet")
    assert answer.status_code == 200, answer.text
    drafted = _drafted(answer.text)
    assert drafted["person_id"] == ("VARCHAR", "identifying")
    assert drafted["birth_date"] == ("DATE", "internal")
    assert drafted["income"] == ("DOUBLE", "internal")
    small = parquet_bytes(citizens_table(10, seed=2))
    assert _drafted(_draft(api, stu, small, "table=people&format=parquet&whole=true").text) == drafted
    garbled = _draft(api, stu, b"not parquet at all", "table=people&format=parquet&whole=true")
    assert garbled.status_code == 422


def test_another_domains_steward_may_not_draft_and_an_oversized_sample_is_refused(api: World) -> None:
    sample = csv_bytes(citizens_table(50, seed=1))
    cleo = sign_in(api.client, api.tokens["cleo"])
    refused = _draft(api, cleo, sample, "table=citizens&format=csv")
    assert refused.status_code == 403
    assert any(e["actor"] == "cleo" for e in api.audit_events("request.denied"))
    stu = sign_in(api.client, api.tokens["stu"])
    assert _draft(api, stu, b"x" * (64 * 1024 + 1), "format=csv").status_code == 413
    # Raw bytes are accepted on the draft only: another console form still wants a form or JSON.
    other = api.client.post(
        "/console/jobs/check",
        headers={**stu.headers, "X-CSRF-Token": stu.csrf, "Content-Type": "application/octet-stream"},
        content=b"person_id\nP1\n",
    )
    assert other.status_code == 415


def test_a_drafting_sample_is_never_stored(api: World) -> None:
    marker = b"Quillfeather"
    sample = b"person_id,nickname\nP1," + marker + b"\nP2,Other\n"
    stu = sign_in(api.client, api.tokens["stu"])
    before = api.client.get("/v1/datasets", headers=api.h("stu")).json()
    answer = _draft(api, stu, sample, "table=t&format=csv&whole=true", name="citizens")
    assert answer.status_code == 200, answer.text
    assert _drafted(answer.text) == {
        "person_id": ("VARCHAR", "identifying"),
        "nickname": ("VARCHAR", "internal"),
    }
    assert api.client.get("/v1/datasets", headers=api.h("stu")).json() == before
    stored = [p for p in api.settings.state_dir.rglob("*") if p.is_file() and marker in p.read_bytes()]
    assert stored == []


def test_the_auditor_sees_the_chain_verified_and_a_rewritten_event_caught(tmp_path: Path) -> None:
    with world(tmp_path / "state") as own:
        audra = sign_in(own.client, own.tokens["audra"])
        page = audra.get(own.client, "/console/audit").text
        assert re.search(r'id="chain-status">Verified from genesis: [\d,]+ events', page)
        services = own.client.app.state.services  # type: ignore[attr-defined]
        with services.db.write() as session:
            session.execute(
                update(AuditEventRow).where(AuditEventRow.seq == 3).values(details={"rewritten": True})
            )
        page = audra.get(own.client, "/console/audit").text
        assert 'id="chain-status" role="alert">The chain does not verify' in page


def test_the_admin_creates_a_domain_and_a_principal_whose_token_is_shown_once(api: World) -> None:
    admin = sign_in(api.client, api.tokens["admin"])
    assert admin.post(api.client, "/console/admin/domains", {"name": "tax-office"}).status_code == 303
    created = admin.post(
        api.client, "/console/admin/principals", {"name": "tess", "role": "steward", "domain": "tax-office"}
    )
    token = re.search(r"<code>(sbx_[\w-]+)</code>", created.text)
    assert token is not None
    assert token.group(1) not in admin.get(api.client, "/console/admin").text
    whoami = api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {token.group(1)}"}).json()
    assert (whoami["role"], whoami["domain"]) == ("steward", "tax-office")
    assert any(e["actor"] == "admin" for e in api.audit_events("domain.created"))
    revoked = admin.post(api.client, "/console/admin/principals/tess/tokens/revoke")
    assert "Tokens revoked for" in revoked.text
    assert (
        api.client.get("/v1/whoami", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code == 401
    )


def test_the_auditor_replays_a_released_job_and_reads_the_outcome(api: World) -> None:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = submitted.json()["job_id"]
    assert api.wait(job_id)["state"] == "released"
    audra = sign_in(api.client, api.tokens["audra"])
    assert "Replay this job" in audra.get(api.client, f"/console/jobs/{job_id}").text
    answer = audra.post(api.client, f"/console/jobs/{job_id}/replay")
    assert answer.status_code == 200
    assert "<strong>match</strong>" in answer.text
    assert any(e["details"].get("job") == job_id for e in api.audit_events("job.replayed"))


def test_a_result_over_time_is_drawn_as_a_line_in_time_order(api: World) -> None:
    sql = "SELECT birth_date, COUNT(*) AS n FROM citizens GROUP BY birth_date"
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": sql})
    job_id = submitted.json()["job_id"]
    assert api.wait(job_id)["state"] == "released"
    result = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).json()
    assert result["column_types"][0] == "date"
    page = sign_in(api.client, api.tokens["alice"]).get(api.client, f"/console/jobs/{job_id}").text
    assert 'class="chart line-chart"' in page
    assert 'class="chart-bar"' not in page  # a time axis is not a list of categories
    points = re.search(r'<polyline points="([^"]+)" class="chart-line series-0">', page)
    assert points is not None
    xs = [float(p.split(",")[0]) for p in points.group(1).split()]
    assert len(xs) == result["row_count"]
    assert xs == sorted(xs)
    assert xs[0] < xs[-1]
    dates = sorted(row[0] for row in result["rows"])
    assert f">{dates[0]}</text>" in page
    assert f">{dates[-1]}</text>" in page


def test_a_grouped_aggregate_keeps_its_bar_chart(api: World) -> None:
    submitted = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL})
    job_id = submitted.json()["job_id"]
    assert api.wait(job_id)["state"] == "released"
    rows = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h("alice")).json()["row_count"]
    page = sign_in(api.client, api.tokens["alice"]).get(api.client, f"/console/jobs/{job_id}").text
    assert page.count('class="chart-bar"') == rows > 0
    assert "line-chart" not in page


def test_a_domain_administrator_manages_their_own_domains_stewards_and_operators_only(api: World) -> None:
    dana = sign_in(api.client, api.tokens["dana"])
    assert dana.get(api.client, "/console").headers["location"] == "/console/admin"
    desk = dana.get(api.client, "/console/admin")
    assert desk.status_code == 200
    assert "cleo" not in desk.text  # a steward of another domain
    assert "/console/admin/domains/" not in desk.text  # no key rotation, no new domain
    created = dana.post(api.client, "/console/admin/principals", {"name": "stella", "role": "steward"})
    assert created.status_code == 200
    assert 'id="issued-token"' in created.text
    principals = api.client.get("/v1/principals", headers=api.h("admin")).json()
    assert [(p["role"], p["domain"]) for p in principals if p["name"] == "stella"] == [("steward", DOMAIN)]
    before = len(api.audit_events("request.denied"))
    refused = [
        dana.post(api.client, "/console/admin/principals", {"name": "aud2", "role": "auditor"}),
        dana.post(api.client, "/console/admin/principals/cleo/tokens"),
        dana.post(api.client, "/console/admin/principals/cleo/tokens/revoke"),
        dana.post(api.client, f"/console/admin/domains/{DOMAIN}/rotate"),
    ]
    assert [answer.status_code for answer in refused] == [403, 403, 403, 403]
    assert len(api.audit_events("request.denied")) == before + 4
    issued = dana.post(api.client, "/console/admin/principals/stella/tokens")
    assert issued.status_code == 200
    assert 'id="issued-token"' in issued.text


def test_the_audit_timeline_shows_the_newest_events_first(api: World) -> None:
    audra = sign_in(api.client, api.tokens["audra"])
    page = audra.get(api.client, "/console/audit")
    shown = [int(seq) for seq in re.findall(r"<tr><td>(\d+)</td>", page.text)]
    head = api.client.get("/v1/audit/head", headers=api.h("audra")).json()["last_seq"]
    assert shown == sorted(shown, reverse=True)
    # The page's own `audit.read` event is written before it reads: the newest shown is that event.
    assert shown[0] >= head - 5
