"""Keeps the console's message catalogue in step with its templates.

    python scripts/console_catalog.py          # update messages.po from the templates, compile the .mo
    python scripts/console_catalog.py --check  # exit 1: a string lacks a translation or the .mo is stale

New strings are added to the .po untranslated (and fail --check until a translator fills them in);
strings no longer in any template are dropped. The compiled .mo is committed, so a fresh clone needs no
build step.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

CONSOLE = Path(__file__).resolve().parent.parent / "sandbox_api" / "server" / "console"
PO = CONSOLE / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
OPTIONS = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}


def template_strings() -> list[str]:
    found = extract_from_dir(
        str(CONSOLE / "templates"), method_map=[("**.html", "jinja2")], options_map={"**.html": OPTIONS}
    )
    seen: dict[str, None] = {}
    for _filename, _line, message, _comments, _context in found:
        if isinstance(message, str):
            seen.setdefault(message, None)
    return list(seen)


def read_catalog() -> Catalog:
    with PO.open("rb") as handle:
        return read_po(handle, locale="zh_Hans")


def compiled(catalog: Catalog) -> bytes:
    sink = io.BytesIO()
    write_mo(sink, catalog)
    return sink.getvalue()


def problems() -> list[str]:
    catalog = read_catalog()
    out = [f"untranslated: {s!r}" for s in template_strings() if not (catalog.get(s) and catalog[s].string)]
    if not MO.exists() or MO.read_bytes() != compiled(catalog):
        out.append(f"{MO.name} is stale: run python scripts/console_catalog.py")
    return out


def update() -> None:
    old = read_catalog() if PO.exists() else Catalog(locale="zh_Hans")
    new = Catalog(locale="zh_Hans", project="data-sandbox", fuzzy=False)
    for message in template_strings():
        previous = old.get(message)
        new.add(message, previous.string if previous else "")
    with PO.open("wb") as handle:
        write_po(handle, new, omit_header=False, sort_output=True, width=110)
    MO.write_bytes(compiled(read_catalog()))


if __name__ == "__main__":
    if "--check" in sys.argv:
        listed = problems()
        print("\n".join(listed) or "catalogue complete")
        sys.exit(1 if listed else 0)
    update()
