"""A SoftHSM2 token for the PKCS#11 tests, made once per test process in a temporary directory.

SoftHSM2 reads its configuration (``SOFTHSM2_CONF``) and scans its token directory once, when the
PKCS#11 module is first initialised in a process; a token created afterwards is not seen. So every test
of the process shares one token, created before the module is first loaded, and tests keep apart by
using their own domain names. The system package ``softhsm2`` provides the module and
``softhsm2-util`` (``scripts/test_services.sh`` installs it).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOFTHSM_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "data-sandbox-test"


@dataclass(frozen=True)
class SoftHsmToken:
    library: str
    label: str
    pin: str
    directory: Path


@functools.cache
def softhsm_token() -> SoftHsmToken:
    """The process's test token (created on first call, removed when the process exits)."""
    directory = Path(tempfile.mkdtemp(prefix="softhsm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    tokens = directory / "tokens"
    tokens.mkdir()
    config = directory / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(config)  # read by the module at its first initialisation
    pin, so_pin = os.urandom(8).hex(), os.urandom(8).hex()
    util = shutil.which("softhsm2-util")
    assert util is not None, "softhsm2-util is missing: run scripts/test_services.sh (installs softhsm2)"
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            pin,
            "--so-pin",
            so_pin,
        ],
        check=True,
        capture_output=True,
    )
    return SoftHsmToken(library=SOFTHSM_LIBRARY, label=TOKEN_LABEL, pin=pin, directory=directory)
