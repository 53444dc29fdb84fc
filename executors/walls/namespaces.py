"""Namespaces, a minimal root and an unprivileged identity for one sandbox process.

- **Network**: a new network namespace holds only a loopback interface, down: no route anywhere.
- **Mount** (with new IPC and UTS namespaces): the process pivots into a fresh root built on a small
  tmpfs, holding read-only binds of what the interpreter needs (its prefixes, every ``sys.path``
  directory, ``/usr``, ``/etc`` and the library directories), four device nodes, a ``/proc`` that shows
  only the sandbox's own processes (``hidepid=invisible``), and its private directory at ``/job``, the
  only writable place. The state directory, keyring and database are not in it; where one lies inside a
  bound directory (a state directory inside the project, say) an empty read-only tmpfs or ``/dev/null``
  covers it.
- **Identity**: a gateway running as root gives each sandbox its own uid and gid, ``first_uid + pid``
  (process ids are unique among live processes, so no two sandboxes share one, and neither does the
  gateway), with no supplementary groups and no capabilities left. A gateway that is not root maps
  itself to ``nobody`` in a new user namespace and drops every capability there.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_DUMPABLE = 4
NOBODY = 65534
# Where the private directory appears inside (a name no system directory or sys.path entry uses, so that
# nothing readable lies beneath it).
PRIVATE_DIR = "/job"
MAX_ID = 2**32 - 1  # (uid_t) -1 means "unchanged" to the kernel
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/lib", "/lib64", "/lib32", "/sbin")
DEVICES = ("null", "zero", "random", "urandom")
_CAP_VERSION_3 = 0x20080522


class WallFailure(Exception):
    """A wall could not be raised; ``reason`` names the step and the kernel's answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def libc() -> ctypes.CDLL:
    library = ctypes.CDLL(None, use_errno=True)
    library.syscall.restype = ctypes.c_long
    return library


def _check(result: int, what: str) -> None:
    if result != 0:
        raise WallFailure(f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encoded = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    _check(
        libc().mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3]), f"mount {target}"
    )


def unshare(flags: int, what: str) -> None:
    _check(libc().unshare(flags), f"unshare({what})")


def enter_user_namespace() -> None:
    """Become ``nobody`` in a new user namespace (for a gateway that is not root): the namespace's
    capabilities let the next steps build the mount namespace; :func:`drop_capabilities` ends them."""
    uid, gid = os.getuid(), os.getgid()
    unshare(CLONE_NEWUSER, "user")
    # A process that is not dumpable cannot open its own /proc files for writing (they belong to root):
    # dumpable for the three writes, then not again (raise_walls ends with PR_SET_DUMPABLE 0).
    _check(libc().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    try:
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{NOBODY} {uid} 1"),
            ("gid_map", f"{NOBODY} {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "wb") as handle:  # noqa: PTH123 - procfs
                handle.write(text.encode())  # bytes: no codec to import half-way into a namespace
    except OSError as exc:
        raise WallFailure(f"user namespace map: {exc.strerror}") from exc


def readable_paths(extra: Iterable[str] = ()) -> list[str]:
    """The top-most existing directories (and files) the interpreter and its libraries read.

    Never ``/`` itself (a gateway started with ``python -m`` from ``/`` has it on ``sys.path``): that
    would bind the whole host; whatever the sandbox imports from there was imported before the walls.

    >>> paths = readable_paths(["/"])
    >>> "/usr" in paths, "/" in paths
    (True, False)
    """
    wanted = {*SYSTEM_PATHS, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra}
    wanted.update(p for p in sys.path if p)
    existing = sorted({str(Path(p).absolute()) for p in wanted if os.path.lexists(p)} - {"/"})
    kept: list[str] = []
    for path in existing:  # sorted: an ancestor comes before what it contains
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _bind(source: str, target: str, *, flags: int) -> None:
    _mount(source, target, None, MS_BIND)
    _mount(None, target, None, MS_BIND | MS_REMOUNT | flags)


def _make_target(target: str, *, directory: bool) -> None:
    if directory:
        Path(target).mkdir(parents=True, exist_ok=True)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).touch()  # an empty mount point


def build_root(jobdir: str, *, readable: Iterable[str], hidden: Iterable[str], with_proc: bool) -> str:
    """Build the sandbox's root under ``jobdir`` (mount namespace already entered); returns its path.

    ``jobdir/work`` (made here) becomes :data:`PRIVATE_DIR`, the one writable directory. It is mounted
    last but one (before ``/proc``), so nothing a readable directory holds can shadow it.
    """
    root, work = f"{jobdir}/root", f"{jobdir}/work"
    for path in (root, work):
        Path(path).mkdir(mode=0o700, exist_ok=True)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in readable:
        source, target = Path(path), root + path
        if source.is_symlink() and source.parent == Path("/"):  # /lib -> usr/lib on merged-/usr systems
            Path(target).symlink_to(source.readlink())
            continue
        _make_target(target, directory=source.is_dir())
        _bind(path, target, flags=MS_RDONLY | MS_NOSUID | MS_NODEV)
    for name in DEVICES:
        target = f"{root}/dev/{name}"
        _make_target(target, directory=False)
        _bind(f"/dev/{name}", target, flags=MS_NOSUID | MS_NOEXEC)
    private = root + PRIVATE_DIR
    _make_target(private, directory=True)
    _bind(work, private, flags=MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if with_proc:
        _make_target(f"{root}/proc", directory=True)
        _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    for path in hidden:
        target = root + str(Path(path).absolute())
        if Path(target).is_dir():
            _mount(
                "tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555"
            )
        elif os.path.lexists(target):
            _bind("/dev/null", target, flags=MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    return root


def pivot_into(root: str) -> None:
    """Make ``root`` the process's ``/`` and detach everything else; the root itself turns read-only."""
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise WallFailure(f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(root)
    _check(int(libc().syscall(number, b".", b".")), "pivot_root")  # the old root stacks under the new
    _check(libc().umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def make_private() -> None:
    """No mount event of the sandbox propagates back to the host, nor from it into the sandbox."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def become(uid: int, gid: int, *, workdir: str) -> None:
    """Drop root for ``uid``/``gid`` with no supplementary groups: every capability goes with it.
    ``workdir`` (the private directory, as the process sees it now) becomes theirs."""
    if not 0 < uid < MAX_ID or not 0 < gid < MAX_ID:
        raise WallFailure(f"uid {uid} or gid {gid} is outside 1..{MAX_ID - 1} (setting sandbox_first_uid)")
    os.chown(workdir, uid, gid)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise WallFailure(f"setresuid({uid}) did not take")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (a user namespace's capabilities included)."""
    header = _CapHeader(version=_CAP_VERSION_3, pid=0)
    data = (_CapData * 2)()
    _check(libc().capset(ctypes.byref(header), ctypes.byref(data)), "capset")
