"""Capability system calls: capset/capget (v3), the bounding and ambient sets.

python-prctl covers keepcaps, no_new_privs, dumpable and the bounding set; it has
no ambient-set calls and sets capability sets one flag at a time, so capset and
PR_CAP_AMBIENT go through ctypes here.
"""

import ctypes

import prctl

from .libc import check, libc, syscall

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread as 64-bit masks."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    syscall("capget", ctypes.byref(header), data)
    return tuple(getattr(data[0], f) | (getattr(data[1], f) << 32)
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    syscall("capset", ctypes.byref(header), data)


def bounding_has(cap: int) -> bool:
    return bool(prctl.capbset_read(cap))


def bounding_drop(cap: int) -> None:
    prctl.capbset_drop(cap)


def _prctl(option: int, arg2: int, arg3: int = 0) -> int:
    libc.prctl.restype = ctypes.c_int
    return check(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                            ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


def ambient_clear() -> None:
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def ambient_raise(cap: int) -> None:
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def set_keepcaps(on: bool) -> None:
    prctl.set_keepcaps(on)


def set_no_new_privs() -> None:
    prctl.set_no_new_privs(1)


def set_dumpable(on: bool) -> None:
    prctl.set_dumpable(on)
