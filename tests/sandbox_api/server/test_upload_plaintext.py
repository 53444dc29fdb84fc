"""No plaintext on disk, uploads included: an attack by someone who can read the gateway's disks.

The fact they want: a citizen's name from an uploaded register (here a canary string). They get the
state directory (keyring aside), the temporary directories and the database files, and a copy of any
file the gateway process holds open while it receives the upload (a spooled temporary file is unlinked
at once, so only its open descriptor shows it; on a disk its blocks stay until overwritten).

Before the fix the multipart parser spooled every file part past 1 MiB to an unlinked temporary file
in plaintext: the mid-upload scan found the canary there (this test failed on that code).
"""

from __future__ import annotations

import asyncio
import json
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message

from tests.sandbox_api.api_helpers import CITIZENS_MANIFEST, DATASET, DOMAIN, World, bearer, world

CANARY = b"Canary-Q8Z4-Only-In-Memory"
CHUNK = 256 * 1024
SPOOL_THRESHOLD = 1 << 20  # the multipart parser's default spooling size


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("plaintext"), max_upload_mb=16) as deployment:
        yield deployment


def _register(rows: int) -> bytes:
    lines = [b"person_id,name,district,sex,birth_date,income"]
    lines += [b"P%07d,%s %d,North,F,1970-01-01,%d" % (i, CANARY, i, 1000 + i) for i in range(rows)]
    return b"\n".join(lines) + b"\n"


def _file_backed_copies_holding(needle: bytes) -> list[str]:
    """Every regular file this process holds open, outside RAM-backed /dev/shm, that contains ``needle``."""
    hits = []
    for entry in Path("/proc/self/fd").iterdir():
        try:
            target = str(entry.readlink())
            if not stat.S_ISREG(entry.stat().st_mode) or target.startswith(("/dev/shm/", "/memfd:")):
                continue
            if needle in entry.read_bytes():
                hits.append(target)
        except OSError:  # closed meanwhile, or not readable: not ours to scan
            continue
    return hits


def _files_holding(root: Path, needle: bytes, *, recursive: bool) -> list[str]:
    paths = root.rglob("*") if recursive else root.iterdir()
    hits = []
    for path in paths:
        try:
            if path.is_file() and needle in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue
    return hits


def _upload_and_scan_midway(api: World, body: bytes, content_type: str) -> tuple[int, list[str]]:
    """Drive the app with the body in chunks; once more than the spooling size has arrived, scan."""
    app: Any = api.client.app
    path = f"/v1/datasets/{DOMAIN}/{DATASET}/versions"
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in bearer(api.tokens["stu"]).items()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    found: list[str] = []
    status: list[int] = []
    offsets = iter(range(0, len(body), CHUNK))

    async def receive() -> Message:
        offset = next(offsets, None)
        if offset is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        if offset >= 2 * SPOOL_THRESHOLD and not found:
            found.extend(_file_backed_copies_holding(CANARY))
        await asyncio.sleep(0)
        return {"type": "http.request", "body": body[offset : offset + CHUNK], "more_body": True}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    asyncio.run(app(scope, receive, send))
    return status[0], found


def test_an_upload_leaves_no_plaintext_on_disk(api: World) -> None:
    register = _register(60_000)
    assert len(register) > 3 * SPOOL_THRESHOLD
    request = httpx.Request(
        "POST",
        "http://testserver/",
        data={"manifest": json.dumps(CITIZENS_MANIFEST)},
        files={"citizens": ("citizens.csv", register, "text/csv")},
    )
    body = request.read()
    status, open_copies = _upload_and_scan_midway(api, body, request.headers["content-type"])
    assert status == 201
    assert open_copies == []
    assert _files_holding(api.settings.state_dir, CANARY, recursive=True) == []
    assert _files_holding(Path(tempfile.gettempdir()), CANARY, recursive=False) == []
