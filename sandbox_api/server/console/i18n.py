"""The console's languages: English (the source strings) and Simplified Chinese (a Babel catalogue).

Every visible string in the templates goes through ``gettext`` (``{% trans %}`` or ``_()``); the
compiled catalogue ``locale/zh_Hans/LC_MESSAGES/messages.mo`` is committed beside its ``.po`` (a test
checks that the two agree and that every template string is translated), so a fresh clone needs no
build step. Dates and numbers are formatted by Babel for the chosen locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


@dataclass(frozen=True)
class Language:
    code: str  # what the language cookie holds and the switch sends
    babel_locale: str  # what Babel formats with
    html_lang: str  # the <html lang> attribute
    label: str  # the language's own name, shown in the switch


LANGUAGES: dict[str, Language] = {
    "en": Language("en", "en", "en", "English"),
    "zh": Language("zh", "zh_Hans_CN", "zh-Hans", "简体中文"),
}
DEFAULT = "en"


def negotiate(cookie: str | None, accept_language: str | None) -> Language:
    """The cookie's choice, else the first supported language the browser prefers, else English.

    >>> negotiate(None, "zh-CN,zh;q=0.9,en;q=0.8").code
    'zh'
    >>> negotiate("en", "zh-CN").code
    'en'
    """
    if cookie in LANGUAGES:
        return LANGUAGES[cookie]
    for part in (accept_language or "").split(","):
        primary = part.split(";")[0].strip().lower().split("-")[0]
        if primary in LANGUAGES:
            return LANGUAGES[primary]
    return LANGUAGES[DEFAULT]


def load_translations() -> dict[str, NullTranslations]:
    """One catalogue per language, read once when the console is installed."""
    out: dict[str, NullTranslations] = {"en": NullTranslations()}
    out["zh"] = Translations.load(str(LOCALE_DIR), ["zh_Hans"], DOMAIN)
    return out


@cache
def babel_locale(code: str) -> Locale:
    """The parsed locale, once: Babel given a string parses it on every call, which made formatting a
    page of 200 timestamps cost about three times as much."""
    return Locale.parse(code)


def localised_datetime(value: str | None, locale: str | Locale) -> str:
    """An ISO timestamp as the locale writes it (the ISO text itself when it does not parse)."""
    if not value:
        return ""
    return _datetime_text(value, str(locale))


@lru_cache(maxsize=8192)
def _datetime_text(value: str, code: str) -> str:
    # Kept: the audit page shows the same timestamps load after load, and Babel's formatting is most
    # of that page's rendering time.
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return format_datetime(moment, format="medium", locale=babel_locale(code))


def localised_number(value: object, locale: str | Locale) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return format_decimal(value, locale=locale)
