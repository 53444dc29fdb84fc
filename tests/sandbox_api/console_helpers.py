"""Signing in to the web console from a test client: the cookie is ``Secure``, so it is carried by hand
(a plain-HTTP test client would rightly refuse to send it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox_api.server.console.session import COOKIE

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class ConsoleSession:
    cookie: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.cookie}"}

    def get(self, client: Any, path: str, **kwargs: Any) -> Any:
        return client.get(path, headers=self.headers, follow_redirects=False, **kwargs)

    def post(self, client: Any, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Any:
        form = {"csrf": self.csrf, **(data or {})}
        return client.post(path, headers=self.headers, data=form, follow_redirects=False, **kwargs)


def session_cookie(response: Any) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return rest.split(";")[0].strip('"')
    raise AssertionError(f"no {COOKIE} cookie in {response.headers}")


def anonymous(client: Any) -> ConsoleSession:
    page = client.get("/console/sign-in")
    found = CSRF_FIELD.search(page.text)
    assert found, page.text
    return ConsoleSession(cookie=session_cookie(page), csrf=found.group(1))


def sign_in(client: Any, token: str) -> ConsoleSession:
    visitor = anonymous(client)
    answer = visitor.post(client, "/console/sign-in", {"token": token})
    assert answer.status_code == 303, answer.text
    cookie = session_cookie(answer)
    home = client.get("/console/home", headers={"Cookie": f"{COOKIE}={cookie}"})
    found = CSRF_FIELD.search(home.text)
    assert home.status_code == 200, home.text
    assert found, home.text
    return ConsoleSession(cookie=cookie, csrf=found.group(1))
