#!/usr/bin/env bash
# Sets everything up, seeds an embedded deployment with generated data, narrates a walkthrough of every
# role, then keeps serving the gateway (OpenAPI docs at http://127.0.0.1:8000/docs). Extra arguments go
# to `sandbox demo` (see `sandbox demo --help`). Afterwards the command line is .venv/bin/sandbox (or
# `sandbox` after `source .venv/bin/activate`); the demo prints the commands to try.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sandbox demo "$@"
