#!/usr/bin/env bash
# Installs the real services some tests start themselves (from the system packages, when missing):
# PostgreSQL binaries (initdb, pg_ctl) for the store tests; Chromium (and a CJK font for the Chinese
# pages' screenshots) for the web console's browser tests, which Playwright drives at /usr/bin/chromium:
# no browser is ever downloaded; SoftHSM2 (a PKCS#11 token in software) for the hardware-key tests. Needs root and apt; otherwise says what to do.
set -euo pipefail
missing=()
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
if ! ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1; then
    missing+=(fonts-noto-cjk)
fi
if [ ! -e /usr/lib/softhsm/libsofthsm2.so ] || ! command -v softhsm2-util >/dev/null; then
    missing+=(softhsm2)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${missing[*]} from the system packages (the tests start them on loopback)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "Missing for the tests: ${missing[*]}. Install these system packages, then run the tests again." >&2
    exit 1
fi
