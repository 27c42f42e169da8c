"""The syscall filter of daytona_local's sandboxes, probed from inside through the real SDK."""

from __future__ import annotations

import platform

import pytest
from daytona import Sandbox

# x86_64 numbers of calls that no tool in the sandbox makes on its own
X86_64_SYSCALLS = {"bpf": 321, "perf_event_open": 298, "add_key": 248, "keyctl": 250, "unshare": 272}


def test_unshare_r_is_refused(sandbox: Sandbox) -> None:
    """No nested user namespace: what made the sandbox user uid 0 with the power to mount."""
    result = sandbox.process.exec("unshare -r id; echo status=$?")
    assert "uid=0" not in result.result
    assert "Operation not permitted" in result.result and "status=1" in result.result


@pytest.mark.parametrize("command", ["unshare -n true", "unshare -m true", "unshare -p -f true", "unshare -U true"])
def test_no_namespace_can_be_made(sandbox: Sandbox, command: str) -> None:
    assert sandbox.process.exec(command).exit_code != 0


def test_mount_is_refused(sandbox: Sandbox) -> None:
    result = sandbox.process.exec("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m; echo status=$?")
    assert "status=0" not in result.result


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the probe uses x86_64 syscall numbers")
def test_keyring_bpf_and_perf_fail_with_eperm(sandbox: Sandbox) -> None:
    script = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"for name, number in {X86_64_SYSCALLS!r}.items():\n"
        "    result = libc.syscall(number, 0, 0, 0, 0, 0)\n"
        "    print(name, result, ctypes.get_errno())\n"
    )
    lines = sandbox.process.code_run(script).result.splitlines()
    assert lines == [f"{name} -1 1" for name in X86_64_SYSCALLS]  # EPERM, from the filter


def test_ptrace_works_inside_the_sandbox(sandbox: Sandbox) -> None:
    """ptrace stays allowed (debuggers, strace) for the sandbox's own processes."""
    script = (
        "import ctypes, os, signal\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    signal.pause()\n"
        "    os._exit(0)\n"
        "print(libc.ptrace(16, pid, 0, 0), ctypes.get_errno())\n"  # PTRACE_ATTACH
        "os.kill(pid, 9)\n"
        "os.waitpid(pid, 0)\n"
    )
    assert sandbox.process.code_run(script).result.split() == ["0", "0"]


def test_threads_and_subprocesses_still_start(sandbox: Sandbox) -> None:
    """clone3 answers ENOSYS, so libc falls back to clone: nothing ordinary breaks."""
    script = (
        "import subprocess, threading\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n"
    )
    assert sandbox.process.code_run(script).result.split() == ["thread", "child"]
