#!/usr/bin/env bash
# Creates .venv (if missing) and installs the pinned dependencies and the project itself.
# Needs only Python 3.11+ with pip and venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
too_old() { ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if too_old "$PYTHON"; then
    echo "Data Sandbox needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." >&2
    echo "Run again with PYTHON=/path/to/python3.11 bash $0" >&2
    exit 1
fi
if [ -x .venv/bin/python ] && too_old .venv/bin/python; then
    rm -rf .venv  # made by an older Python: start over
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
# The client generator runs in its own environment: it pins typer below the CLI's version.
if [ ! -x .venv-codegen/bin/python ] || too_old .venv-codegen/bin/python; then
    rm -rf .venv-codegen
    "$PYTHON" -m venv .venv-codegen
fi
.venv-codegen/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-codegen.lock
