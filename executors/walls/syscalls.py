"""The seccomp filter: the system calls a sandbox may make, everything else fails with ``EPERM``.

Built with libseccomp through ``pyseccomp`` (a ctypes binding with the API of libseccomp's own Python
module; libseccomp resolves names per architecture and writes the BPF program).

**How the list was made.** Measured, not guessed: the executors' test suites that run sandboxes (SQL,
Python and mock jobs, warm and cold sandboxes, timeouts, memory and CPU bombs, cancellation, crashes)
were run under ``strace -f`` with a permissive filter, and every call the sandbox processes and their
threads made once their filter was loaded is in :data:`MEASURED`. :data:`MARGIN` adds, by name and
reason, calls on paths those tests do not reach (thread exit, large allocations, sleeping, CPU
counts on other machines, lazy imports). Nothing else is allowed; in particular:

- no new processes (``clone`` only with ``CLONE_THREAD`` and no namespace flag; ``clone3`` answers
  ``ENOSYS`` so the C library falls back to ``clone``; no ``fork``, ``vfork`` or ``execve``);
- no sockets but Unix ones (the pipe to the parent is one), no ``ptrace`` or ``process_vm_readv``, no
  ``mount``/``unshare``/``setns``/``pivot_root``, no ``bpf``, ``keyctl``, ``kexec``,
  ``perf_event_open``, ``userfaultfd``, ``io_uring`` (which would bypass this filter), module loading,
  uid changes, signals to other processes (``kill``);
- ``prctl`` except ``PR_SET_DUMPABLE`` (the sandbox stays undumpable), ``ioctl`` only for the few
  terminal and file-descriptor queries the runtime makes, ``prlimit64`` only on the process itself.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

import pyseccomp  # type: ignore[import-untyped]  # ctypes binding without type hints

# What the sandboxes of the executors' test suites called (see the module docstring); ``clone3``,
# ``ioctl``, ``prctl`` and ``prlimit64`` were also called and are allowed below with conditions.
MEASURED = (
    "chdir", "close", "exit_group", "fcntl", "fstat", "futex", "getrandom", "getrusage", "getsockname",
    "getsockopt", "gettid", "lseek", "madvise", "mmap", "mprotect", "newfstatat", "openat", "pread64",
    "read", "readlink", "recvmsg", "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "set_robust_list", "setitimer", "stat", "sysinfo", "umask", "write",
)  # fmt: skip
MARGIN = (
    # a thread's own exit, memory given back or grown, the heap
    "exit", "munmap", "mremap", "brk",
    # time, sleeping, yielding, the timer the Python runtime arms and reads back
    "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "sched_yield", "getitimer",
    # CPU and NUMA queries the engine and Arrow make on larger machines
    "sched_getaffinity", "get_mempolicy", "uname",
    # waiting on the pipe (Connection.poll), lazy imports (directory listings, file metadata, cwd)
    "poll", "ppoll", "select", "pselect6", "getdents64", "lstat", "statx", "access", "faccessat",
    "faccessat2", "readlinkat", "getcwd", "close_range", "writev",
    # signals to itself (raise, faulthandler), identity queries of the os module
    "getpid", "getppid", "tgkill", "sigaltstack", "getuid", "geteuid", "getgid", "getegid",
    # the private directory's own use (Landlock and the mount namespace confine it there)
    "mkdir", "rmdir", "unlink", "unlinkat",
)  # fmt: skip
ALLOWED: tuple[str, ...] = MEASURED + MARGIN

AF_UNIX = 1
PR_SET_DUMPABLE = 4
CLONE_THREAD = 0x00010000
# Every CLONE_NEW* flag (and CLONE_NEWTIME's low bit): a thread never needs one.
CLONE_NAMESPACES = 0x7E020080
# ioctl requests the runtime makes: FIOCLEX/FIONCLEX (close-on-exec), FIONREAD (bytes waiting on the
# pipe), TCGETS and TIOCGWINSZ (isatty and terminal size of the inherited standard streams).
ALLOWED_IOCTLS = (0x5451, 0x5450, 0x541B, 0x5401, 0x5413)


def build_filter(*, denied_errno: int = errno.EPERM) -> pyseccomp.SyscallFilter:
    """The sandbox's filter, ready to ``load()``: the allow-list above, ``denied_errno`` for the rest."""
    rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ERRNO(denied_errno))
    rules.set_attr(pyseccomp.Attr.CTL_TSYNC, 1)  # every thread of the process, not only the caller
    for name in _known(ALLOWED):
        rules.add_rule(pyseccomp.ALLOW, name)
    # Threads yes, processes and namespaces no.
    rules.add_rule(
        pyseccomp.ALLOW,
        "clone",
        pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_THREAD | CLONE_NAMESPACES, CLONE_THREAD),
    )
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")  # flags live in memory: fall back to clone
    rules.add_rule(pyseccomp.ALLOW, "socket", pyseccomp.Arg(0, pyseccomp.EQ, AF_UNIX))
    rules.add_rule(pyseccomp.ALLOW, "socketpair", pyseccomp.Arg(0, pyseccomp.EQ, AF_UNIX))
    rules.add_rule(pyseccomp.ALLOW, "prctl", pyseccomp.Arg(0, pyseccomp.NE, PR_SET_DUMPABLE))
    rules.add_rule(pyseccomp.ALLOW, "prlimit64", pyseccomp.Arg(0, pyseccomp.EQ, 0))
    for request in ALLOWED_IOCTLS:
        rules.add_rule(pyseccomp.ALLOW, "ioctl", pyseccomp.Arg(1, pyseccomp.EQ, request))
    return rules


def _known(names: Iterable[str]) -> list[str]:
    """The names this architecture has (``open`` and ``stat`` exist on x86-64, not on arm64)."""
    native = pyseccomp.system_arch()
    return [name for name in names if pyseccomp.resolve_syscall(native, name) >= 0]
