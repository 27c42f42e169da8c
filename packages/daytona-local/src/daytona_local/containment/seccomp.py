"""The syscall filter every sandbox runs under, as a container runtime's default profile does.

Compiled once by libseccomp (through `pyseccomp`) into classic BPF, which bubblewrap loads with
`--seccomp FD` just before it starts the sandbox's init, so the init and everything it starts are
filtered. Everything is allowed except what lets a process leave or reshape its container or reach
the kernel's global state: new namespaces (`unshare -r` included), mounts, the kernel keyring, bpf,
perf events, modules, kexec, reboot, swap, clocks, io_uring, userfaultfd and handle-based opens.
Refused calls fail with EPERM (clone3 with ENOSYS, so that libc falls back to clone, whose
namespace flags are then refused); calls of another architecture (32-bit entry points) kill.
ptrace stays allowed: a PID namespace only names the sandbox's own processes, and its init is
neither traceable (not dumpable) nor killable from inside (a PID namespace's init only receives
signals it handles).
"""

from __future__ import annotations

import errno
import functools
import os

REFUSED = (
    # namespaces and mounts
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # the kernel keyring
    "keyctl",
    "add_key",
    "request_key",
    # bpf and perf
    "bpf",
    "perf_event_open",
    # the kernel's global state
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "vhangup",
    "nfsservctl",
    "uselib",
    "open_by_handle_at",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


@functools.cache
def compile_filter() -> bytes:
    """The filter as BPF bytes; raises OSError (or ImportError) where libseccomp is missing."""
    import pyseccomp as seccomp

    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in REFUSED:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # not a syscall on this architecture
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    fd = os.memfd_create("seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as buffer:
        rules.export_bpf(buffer)
        buffer.seek(0)
        return buffer.read()


def filter_fd(program: bytes) -> int:
    """A fresh descriptor holding `program`, read to its end by bubblewrap (one per launch)."""
    fd = os.memfd_create("seccomp")
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
