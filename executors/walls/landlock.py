"""Landlock (Linux 5.13+): the kernel refuses file, TCP and signal access outside what the sandbox keeps.

Called through the raw system calls (glibc has no wrappers; the numbers are the same on every
architecture, see ``include/uapi/asm-generic/unistd.h``). The rule set follows the kernel's
documentation (``Documentation/userspace-api/landlock.rst``): handle every right the running kernel's
ABI knows, then grant read and execute beneath the sandbox's root and every right beneath its private
directory. From ABI 4 TCP bind and connect are handled with no rule (so refused), from ABI 6 signals to
and abstract Unix sockets of processes outside the sandbox's domain are refused.

Landlock can only take rights away, and it holds after the walls before it (mount namespace, uid) in
case one of them is undone by a kernel bug: it is keyed to file hierarchies, not to path names.
"""

from __future__ import annotations

import ctypes
import os

SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
READ_RIGHTS = _EXECUTE | _READ_FILE | _READ_DIR
# Every file-system right by the ABI that introduced it: v1 has 13, v2 adds REFER, v3 TRUNCATE,
# v5 IOCTL_DEV.
_FS_BITS_BY_ABI = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


class LandlockUnavailable(Exception):
    """Landlock could not be applied; ``reason`` says why, for the wall report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is __attribute__((packed))
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The Landlock ABI the running kernel offers; 0 where it has none (or it is disabled at boot)."""
    libc = _libc()
    version = libc.syscall(
        SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION)
    )
    return max(0, int(version))


def all_fs_rights(abi: int) -> int:
    """Every file-system right of ``abi`` (the newest known ABI for anything newer).

    >>> all_fs_rights(1) == (1 << 13) - 1, all_fs_rights(7) == (1 << 16) - 1
    (True, True)
    """
    return (1 << _FS_BITS_BY_ABI[min(abi, max(_FS_BITS_BY_ABI))]) - 1


def _attr_size(abi: int) -> int:
    if abi >= 6:
        return ctypes.sizeof(_RulesetAttr)
    if abi >= 4:
        return 16
    return 8


def restrict(*, readable: str, writable: str) -> int:
    """Confine this process (and its future threads) to reading beneath ``readable`` and anything beneath
    ``writable``; no TCP, no signals out of the domain where the ABI allows. Returns the ABI applied.

    Needs ``PR_SET_NO_NEW_PRIVS`` (or CAP_SYS_ADMIN) first. Raises :class:`LandlockUnavailable`.
    """
    abi = abi_version()
    if abi == 0:
        raise LandlockUnavailable("the kernel offers no Landlock ABI (not built in, or not in lsm=)")
    libc = _libc()
    fs_rights = all_fs_rights(abi)
    attr = _RulesetAttr(
        handled_access_fs=fs_rights,
        handled_access_net=(NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    ruleset = int(libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(_attr_size(abi)), 0))
    if ruleset < 0:
        raise LandlockUnavailable(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:
        for path, rights in ((readable, READ_RIGHTS), (writable, fs_rights)):
            _add_path_rule(libc, ruleset, path, rights)
        if libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise LandlockUnavailable(f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return abi


def _add_path_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
    try:
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise LandlockUnavailable(f"landlock_add_rule({path}) failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
