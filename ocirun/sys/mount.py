"""mount(2) and friends: umount2, pivot_root, openat2, the fd-based mount API, mknod.

`Syscalls` bundles the calls the rootfs code makes so that tests can swap in
a recorder and check the order and flags without root.
"""

import ctypes
import os

from .libc import check, libc, syscall

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_POSIXACL = 0x10000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

PROPAGATION_FLAGS = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE
ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME

MNT_FORCE = 1
MNT_DETACH = 2

# openat2(2)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# open_tree(2), move_mount(2), mount_setattr(2)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# statfs f_type values the rootfs code checks for.
PROC_SUPER_MAGIC = 0x9FA0
CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
                ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong),
                ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2),
                ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
                ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


def _b(value: str | None):
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    check(libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
          f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    check(libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    syscall("pivot_root", _b(new_root), _b(put_old))


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return syscall("openat2", ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                   ctypes.c_size_t(ctypes.sizeof(how)))


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return syscall("open_tree", ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags))


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    syscall("move_mount", ctypes.c_int(from_fd), _b(from_path), ctypes.c_int(to_fd),
            _b(to_path), ctypes.c_uint(flags))


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    syscall("mount_setattr", ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
            ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def fstatfs_type(fd: int) -> int:
    buf = _Statfs()
    check(libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buf)), "fstatfs")
    return buf.f_type & 0xFFFFFFFF


def mknodat(dirfd: int, name: str, mode: int, device: int) -> None:
    libc.mknodat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_ulong]
    check(libc.mknodat(dirfd, _b(name), mode, device), f"mknod {name}")


def chownat(dirfd: int, name: str, uid: int, gid: int) -> None:
    os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)


def why(error: OSError) -> str:
    """The reason alone ("Invalid argument"), for messages that say themselves what failed."""
    return os.strerror(error.errno) if error.errno else str(error)


def fd_path(fd: int) -> str:
    """The magic link through which a syscall taking a path acts on exactly this fd."""
    return f"/proc/self/fd/{fd}"


class Syscalls:
    """The state-changing calls the rootfs code makes, as methods tests can record."""

    mount = staticmethod(mount)
    umount2 = staticmethod(umount2)
    pivot_root = staticmethod(pivot_root)
    mount_setattr = staticmethod(mount_setattr)
    open_tree = staticmethod(open_tree)
    move_mount = staticmethod(move_mount)
    mknodat = staticmethod(mknodat)
    chownat = staticmethod(chownat)
    chroot = staticmethod(os.chroot)
    chdir = staticmethod(os.chdir)
    fchdir = staticmethod(os.fchdir)
