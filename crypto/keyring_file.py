"""The keyring file on disk: private mode, a cached read, and locked, atomic read-modify-write.

The file is created with mode 0600 and every change replaces it atomically (temporary file in the same
directory, ``fsync``, ``os.replace``, ``fsync`` of the directory). A file readable or writable by group
or others is refused. Changes are serialised by a lock within the process and by ``flock`` on a sidecar
``<file>.lock`` across processes, and each change re-reads the file under that lock, so two processes
rotating at once lose nothing.
"""

from __future__ import annotations

import fcntl
import os
import secrets as _random
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from crypto.errors import KeyringError
from crypto.keyring_format import KeyringState, parse_state

__all__ = ["KeyringFile"]

T = TypeVar("T")


class KeyringFile:
    """One keyring file: :meth:`state` reads it (cached), :meth:`mutate` changes it under both locks.

    :attr:`lock` is re-entrant; hold it across several reads that must see one state.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self.lock = threading.RLock()
        self._cached: tuple[tuple[int, int, int], KeyringState] | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def create_if_missing(self) -> None:
        """Write an empty keyring (mode 0600) unless one is there, making its folder (0700) if needed."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.lock, self._file_lock():
            if not self.path.exists():
                self._write(KeyringState())

    def state(self) -> KeyringState:
        """The file's state, from cache when the file has not been replaced since."""
        with self.lock:
            try:
                st = self.path.stat()
            except OSError as exc:
                raise KeyringError(f"cannot read keyring file {self.path}: {exc.strerror}") from exc
            signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            self._check_mode(st.st_mode)  # a chmod does not change the signature: check on every use
            if self._cached is not None and self._cached[0] == signature:
                return self._cached[1]
            return self.reload()

    def reload(self) -> KeyringState:
        """The file's state, read from disk whatever the cache holds."""
        with self.lock:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError as exc:
                raise KeyringError(f"cannot read keyring file {self.path}: {exc.strerror}") from exc
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                self._check_mode(st.st_mode)
                raw = handle.read()
            state = parse_state(raw, self.path)
            self._cached = ((st.st_ino, st.st_mtime_ns, st.st_size), state)
            return state

    def mutate(self, change: Callable[[KeyringState], tuple[KeyringState, T]]) -> T:
        """Apply ``change`` to the state on disk and write the result if it differs; return its value."""
        with self.lock, self._file_lock():
            state = self.reload()  # never trust the cache for a read-modify-write
            new_state, result = change(state)
            if new_state is not state:
                self._write(new_state)
            return result

    def _check_mode(self, mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise KeyringError(f"keyring path {self.path} is not a regular file")
        if mode & 0o077:
            raise KeyringError(
                f"keyring file {self.path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); keys must be private to their owner: "
                f"run `chmod 600 {self.path}` and check that nobody else copied it"
            )

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        # flock on a sidecar file: the keyring itself is replaced on every write, so a lock on it
        # would be a lock on a file that no longer exists.
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyringError(f"cannot open keyring lock file {self._lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _write(self, state: KeyringState) -> None:
        directory = self.path.parent
        tmp = directory / f".{self.path.name}.{_random.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)  # the umask can only narrow the mode; make it exact
                handle.write(state.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise KeyringError(f"cannot write keyring file {self.path}: {exc.strerror}") from exc
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        self._cached = None
