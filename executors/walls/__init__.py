"""The walls of a sandbox process: what holds even if code escapes the language-level sandbox.

:func:`raise_walls` runs in the sandbox child before it receives its job (a warm sandbox raises them
before it even warms up), in this order, each for a reason:

1. ``network``: a new network namespace (only a loopback, down), created while the process still has
   the privilege to;
2. ``mount``: new mount, IPC and UTS namespaces, a minimal read-only root without the state directory,
   keyring, database or home directories, the private directory as the one writable place
   (:mod:`executors.walls.namespaces`);
3. ``uid``: its own unprivileged uid and gid (``first_uid + pid``) when the gateway is root, or
   ``userns``: ``nobody`` in a user namespace with no capabilities when it is not;
4. ``no_new_privs``: nothing it could execute would gain privileges (also what lets 5 and 6 apply
   without privileges);
5. ``landlock``: file access beneath its root read-only, beneath its directory read-write; no TCP; no
   signals out of its domain, where the kernel offers Landlock (:mod:`executors.walls.landlock`);
6. ``seccomp``: only the system calls the engine and runtime need (:mod:`executors.walls.syscalls`).

**Fail closed.** Under ``strict`` isolation a wall that cannot be raised raises
:class:`~executors.errors.SandboxWallDown` naming the wall: the job does not run. Landlock is required
when the kernel offers it. ``relaxed`` raises what it can and reports what it could not; ``none`` raises
only ``no_new_privs`` (resource limits, the cleared environment and the locked engine apply at every
level). The result of every job says which walls held (``ResultTable.engine["walls"]``).
"""

from __future__ import annotations

import ctypes
import os
import resource
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from executors.errors import SandboxWallDown
from executors.walls import landlock, namespaces, syscalls
from executors.walls.namespaces import WallFailure

# Far above the uids a system hands out (and below 2**31, which some tools mishandle); a sandbox's uid
# is this plus its pid, and pids stay below 2**22 (the kernel's PID_MAX_LIMIT).
DEFAULT_FIRST_UID = 2_000_000_000
PID_SPAN = 1 << 22
# Threads of one sandbox (the engine's, Arrow's pools, the allocator's): a backstop, since the seccomp
# filter already refuses new processes.
DEFAULT_MAX_TASKS = 512
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
_SIGKILL = 9


class Isolation(StrEnum):
    """How much a deployment insists on (setting ``isolation``)."""

    STRICT = "strict"  # every wall, or the job does not run
    RELAXED = "relaxed"  # every wall the platform allows; the others are reported missing
    NONE = "none"  # only no_new_privs (for platforms without namespaces; development only)


@dataclass(frozen=True)
class WallPlan:
    """What a sandbox must raise. ``hidden``: paths (state directory, keyring, database) to cover should
    one fall inside a directory the sandbox can read; ``first_uid``: see :data:`DEFAULT_FIRST_UID`."""

    isolation: Isolation = Isolation.STRICT
    first_uid: int = DEFAULT_FIRST_UID
    hidden: tuple[str, ...] = ()
    max_tasks: int = DEFAULT_MAX_TASKS


@dataclass(frozen=True)
class WallReport:
    """Which walls held in one sandbox, and why the others did not (``relaxed`` only)."""

    isolation: Isolation
    held: tuple[str, ...]
    missing: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    details: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # what raising each held wall took

    def summary(self) -> str:
        """The held walls as one string for a job's record, e.g. ``"network,mount,uid,seccomp"``.

        >>> WallReport(Isolation.STRICT, held=("network", "mount")).summary()
        'network,mount'
        >>> WallReport(Isolation.NONE, held=()).summary()
        'none'
        """
        return ",".join(self.held) or "none"


def _prctl(option: int, value: int) -> None:
    libc = namespaces.libc()
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise WallFailure(f"prctl({option}): {os.strerror(ctypes.get_errno())}")


class _Builder:
    def __init__(self, plan: WallPlan) -> None:
        self.plan = plan
        self.held: list[str] = []
        self.missing: list[tuple[str, str]] = []
        self.details: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def hold(self, wall: str) -> None:
        now = time.perf_counter()
        self.held.append(wall)
        self.seconds[wall] = now - self._since
        self._since = now

    def failed(self, wall: str, reason: str) -> None:
        self._since = time.perf_counter()
        if self.plan.isolation is Isolation.STRICT:
            raise SandboxWallDown(
                f"the sandbox's {wall} wall could not be raised ({reason}); the job did not run. Run the "
                "gateway as root on Linux with namespaces, seccomp and Landlock enabled, or choose a "
                "weaker level with the setting isolation=relaxed (every wall the platform allows, the "
                "rest reported) or isolation=none (development only)"
            )
        self.missing.append((wall, reason))


def raise_walls(plan: WallPlan, *, jobdir: str) -> WallReport:
    """Raise ``plan``'s walls around this process (see the module docstring); returns the report.

    ``jobdir``: the sandbox's private directory (made by the parent, mode 0700). Under ``strict`` and
    ``relaxed`` its ``work`` subdirectory becomes the sandbox's ``/job``; ``WallReport.workdir`` is the
    directory the job should work in, as the process now sees it.
    """
    build = _Builder(plan)
    threads = _thread_count()
    workdir = jobdir
    if plan.isolation is not Isolation.NONE:
        workdir = _namespaces_and_identity(build, jobdir)
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        build.hold("no_new_privs")
    except WallFailure as exc:
        build.failed("no_new_privs", exc.reason)
    if plan.isolation is not Isolation.NONE:
        _landlock(build, workdir, threads=threads)
        _seccomp(build)
    return WallReport(
        isolation=plan.isolation,
        held=tuple(build.held),
        missing=tuple(build.missing),
        workdir=workdir,
        details=build.details,
        seconds=build.seconds,
    )


def _namespaces_and_identity(build: _Builder, jobdir: str) -> str:
    root_gateway = os.geteuid() == 0
    if not root_gateway:
        try:
            namespaces.enter_user_namespace()
        except WallFailure as exc:
            build.failed("userns", exc.reason)
    try:
        namespaces.unshare(namespaces.CLONE_NEWNET, "network")
        build.hold("network")
    except WallFailure as exc:
        build.failed("network", exc.reason)
    workdir = jobdir
    try:
        namespaces.unshare(
            namespaces.CLONE_NEWNS | namespaces.CLONE_NEWIPC | namespaces.CLONE_NEWUTS, "mount"
        )
        namespaces.make_private()
        root = namespaces.build_root(
            jobdir,
            readable=namespaces.readable_paths(),
            hidden=build.plan.hidden,
            with_proc=root_gateway,
        )
        namespaces.pivot_into(root)
        workdir = namespaces.PRIVATE_DIR
        build.hold("mount")
    except (WallFailure, OSError) as exc:
        build.failed("mount", getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}")
    uid = build.plan.first_uid + os.getpid() % PID_SPAN
    try:
        if root_gateway:
            namespaces.become(uid, uid, workdir=workdir)
            build.hold("uid")
            build.details["uid"] = str(uid)
        else:
            namespaces.drop_capabilities()
            build.hold("userns")
    except (WallFailure, OSError) as exc:
        build.failed("uid", getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}")
    # A change of credentials clears the parent-death signal and the dumpable flag: set them again.
    _prctl(PR_SET_PDEATHSIG, _SIGKILL)
    _prctl(PR_SET_DUMPABLE, 0)
    resource.setrlimit(resource.RLIMIT_NPROC, (build.plan.max_tasks, build.plan.max_tasks))
    return workdir


def _thread_count() -> int:
    """Threads of this process now (read before the walls hide the host's /proc)."""
    try:
        return sum(1 for _ in Path("/proc/self/task").iterdir())
    except OSError:
        return 0  # no /proc: unknown; the kernel still refuses a user namespace to a threaded process


def _landlock(build: _Builder, workdir: str, *, threads: int) -> None:
    if landlock.abi_version() == 0:
        build.details["landlock"] = "not offered by this kernel"
        return  # Landlock is a wall only where the kernel offers it
    if threads > 1:  # landlock_restrict_self confines the calling thread and the threads it starts later
        build.failed(
            "landlock", f"the process already runs {threads} threads, which Landlock would not confine"
        )
        return
    try:
        abi = landlock.restrict(readable="/", writable=workdir)
    except (landlock.LandlockUnavailable, OSError) as exc:
        build.failed("landlock", getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}")
        return
    build.hold("landlock")
    build.details["landlock"] = f"ABI {abi}"


def _seccomp(build: _Builder) -> None:
    try:
        syscalls.build_filter().load()
    except OSError as exc:
        build.failed("seccomp", f"loading the filter failed: {exc.strerror}")
        return
    build.hold("seccomp")
