"""libseccomp through ctypes: build a filter, export or load it, get its notify fd.

libseccomp reports errors as negative errno return values, which `_check` turns
into OSError.  The library is loaded at import time so that the container init
can still use it after pivot_root, when the host's /usr/lib is out of reach.
"""

import ctypes
import errno
import os

# By soname: ctypes.util.find_library would run `ldconfig -p` in a subprocess
# on every ocirun start.
_lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)

# Action values from seccomp.h (the kernel's SECCOMP_RET_* as libseccomp names them).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO_BASE = 0x00050000
ACT_TRACE_BASE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000

# enum scmp_compare
CMP_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
           "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

# enum scmp_filter_attr (libseccomp 2.5)
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_lib.seccomp_version.restype = ctypes.POINTER(_Version)
_lib.seccomp_init.restype = ctypes.c_void_p
_lib.seccomp_init.argtypes = [ctypes.c_uint32]
_lib.seccomp_release.argtypes = [ctypes.c_void_p]
_lib.seccomp_release.restype = None
_lib.seccomp_load.argtypes = [ctypes.c_void_p]
_lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
_lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
_lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
_lib.seccomp_arch_native.restype = ctypes.c_uint32
_lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
_lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
_lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                        ctypes.c_uint, ctypes.POINTER(ArgCmp)]
_lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.seccomp_notify_fd.argtypes = [ctypes.c_void_p]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise OSError(-ret, f"{what}: {os.strerror(-ret)}")
    return ret


def version() -> str:
    v = _lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def arch_token(name: str) -> int:
    """libseccomp's token for an arch name like "x86_64"; 0 when it does not know it."""
    return _lib.seccomp_arch_resolve_name(name.encode())


def syscall_number(name: str) -> int | None:
    """The syscall number (or libseccomp pseudo number) for name, None when unknown."""
    nr = _lib.seccomp_syscall_resolve_name(name.encode())
    return None if nr == -1 else nr


class Filter:
    """An owned scmp_filter_ctx."""

    def __init__(self, default_action: int):
        ctx = _lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(errno.EINVAL, "seccomp_init: invalid default action")
        self._ctx = ctx

    def release(self) -> None:
        if self._ctx:
            _lib.seccomp_release(self._ctx)
            self._ctx = None

    def set_attr(self, attr: int, value: int) -> None:
        _check(_lib.seccomp_attr_set(self._ctx, attr, value), "seccomp_attr_set")

    def add_arch(self, token: int) -> None:
        ret = _lib.seccomp_arch_add(self._ctx, token)
        if ret != -17:  # EEXIST: the native arch is in every new filter
            _check(ret, "seccomp_arch_add")

    def add_rule(self, action: int, syscall_nr: int, conditions: list[tuple[int, int, int, int]]) -> None:
        array = (ArgCmp * max(len(conditions), 1))(*[ArgCmp(*c) for c in conditions])
        _check(_lib.seccomp_rule_add_array(self._ctx, action, syscall_nr, len(conditions), array),
               "seccomp_rule_add")

    def export_bpf(self, fd: int) -> None:
        _check(_lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")

    def load(self) -> None:
        _check(_lib.seccomp_load(self._ctx), "seccomp_load")

    def notify_fd(self) -> int:
        return _check(_lib.seccomp_notify_fd(self._ctx), "seccomp_notify_fd")
