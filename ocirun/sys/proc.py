"""Per-process settings without a Python wrapper: rlimits as full 64-bit values,
I/O priority, sched_setattr, personality."""

import ctypes

from .libc import check, libc, syscall

RLIM_INFINITY = 0xFFFFFFFFFFFFFFFF

IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13


class _Rlimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_uint64), ("hard", ctypes.c_uint64)]


class SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64), ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32), ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64), ("sched_period", ctypes.c_uint64)]


libc.prlimit.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Rlimit), ctypes.POINTER(_Rlimit)]


def getrlimit(resource: int) -> tuple[int, int]:
    old = _Rlimit()
    check(libc.prlimit(0, resource, None, ctypes.byref(old)), "getrlimit")
    return old.soft, old.hard


def setrlimit(resource: int, soft: int, hard: int) -> None:
    new = _Rlimit(soft, hard)
    check(libc.prlimit(0, resource, ctypes.byref(new), None), "setrlimit")


def ioprio_set(io_class: int, priority: int) -> None:
    syscall("ioprio_set", ctypes.c_int(IOPRIO_WHO_PROCESS), ctypes.c_int(0),
            ctypes.c_int((io_class << IOPRIO_CLASS_SHIFT) | priority))


def sched_setattr(policy: int, flags: int, nice: int, priority: int,
                  runtime: int, deadline: int, period: int) -> None:
    attr = SchedAttr(ctypes.sizeof(SchedAttr), policy, flags, nice, priority, runtime, deadline, period)
    syscall("sched_setattr", ctypes.c_int(0), ctypes.byref(attr), ctypes.c_uint(0))


def personality(persona: int) -> None:
    libc.personality.restype = ctypes.c_int
    check(libc.personality(ctypes.c_ulong(persona)), "personality")
