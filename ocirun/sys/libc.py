"""Access to libc and raw syscalls through ctypes, with errno turned into OSError."""

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)

# x86_64 and aarch64 syscall numbers for calls glibc 2.36 has no wrapper for.
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "openat2": 437, "pidfd_open": 434, "pidfd_send_signal": 424,
               "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "bpf": 321,
               "seccomp": 317, "ioprio_set": 251, "sched_setattr": 314, "capset": 126, "capget": 125, "keyctl": 250},
    "aarch64": {"pivot_root": 41, "openat2": 437, "pidfd_open": 434, "pidfd_send_signal": 424,
                "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "bpf": 280,
                "seccomp": 277, "ioprio_set": 30, "sched_setattr": 274, "capset": 91, "capget": 90, "keyctl": 219},
}
SYSCALL_NUMBERS = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])


def check(result: int, what: str) -> int:
    """Raise OSError(errno, what) when a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syscall(name: str, *args) -> int:
    """Call a syscall by name with ctypes-compatible arguments; errors raise OSError."""
    libc.syscall.restype = ctypes.c_long
    return check(libc.syscall(ctypes.c_long(SYSCALL_NUMBERS[name]), *args), name)
