"""A forkserver process class whose children do not re-import the parent's ``__main__``.

The stdlib's forkserver children run the parent's main module again before the target (the
"safe importing of main module" rule of the spawn family). For the gateway that main module is the
``sandbox`` console script or uvicorn, which imports FastAPI, SQLAlchemy and the whole service: about two
seconds per job, for code a sandbox child never uses. Our job targets live in importable modules
(``executors.sandbox``), so the child needs only ``sys.path`` and the target; this launcher sends the
same preparation data as the stdlib's minus the main-module fix-up.
"""

from __future__ import annotations

import io
import os
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Any

_MAIN_FIXUPS = ("init_main_from_path", "init_main_from_name")


class _LeanPopen(popen_forkserver.Popen):
    def _launch(self, process_obj: Any) -> None:
        # Mirrors popen_forkserver.Popen._launch (CPython 3.11-3.13) except for the dropped keys.
        prep_data = spawn.get_preparation_data(process_obj._name)
        for key in _MAIN_FIXUPS:
            prep_data.pop(key, None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(
            self,
            util.close_fds,  # type: ignore[attr-defined]
            (parent_w, self.sentinel),
        )
        with open(w, "wb", closefd=True) as f:  # noqa: PTH123 - a file descriptor, not a path
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class LeanForkServerProcess(ForkServerProcess):
    """``ForkServerProcess`` without the per-child import of ``__main__``."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # the stdlib's name
        return _LeanPopen(process_obj)
