"""Templates and the headers every console page carries.

Pages are rendered on the server (Jinja2, autoescaped); htmx swaps fragments in place. There is no
inline script or style anywhere, so the Content-Security-Policy can forbid both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.support import NullTranslations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from sandbox_api.server.console.charts import bar_chart, line_chart
from sandbox_api.server.console.i18n import (
    LANGUAGES,
    Language,
    babel_locale,
    localised_datetime,
    localised_number,
)

TEMPLATES = Path(__file__).parent / "templates"

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def new_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        # A misspelt or renamed attribute fails the page (and its test) instead of rendering blank.
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["LANGUAGES"] = LANGUAGES
    env.globals["bar_chart"] = bar_chart
    env.globals["line_chart"] = line_chart
    return env


@dataclass(frozen=True)
class Renderer:
    env: Environment
    translations: Mapping[str, NullTranslations]

    def page(
        self,
        template: str,
        *,
        language: Language,
        status_code: int = 200,
        context: Mapping[str, Any],
    ) -> HTMLResponse:
        translations = self.translations[language.code]
        locale = babel_locale(language.babel_locale)
        values = {
            **context,
            "lang": language,
            "_": translations.gettext,
            "gettext": translations.gettext,
            "ngettext": translations.ngettext,
            "when": lambda v: localised_datetime(v, locale),
            "num": lambda v: localised_number(v, locale),
        }
        html = self.env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))
