"""The few bpf(2) commands needed to manage cgroup v2 device programs."""

import ctypes

from .libc import syscall

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
# Lets a new program be attached next to the old one, so the cgroup is never
# left without a filter while the program is replaced.
BPF_F_ALLOW_MULTI = 2


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16)]


class _AttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32)]


class _QueryAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    return syscall("bpf", ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))


def prog_load_cgroup_device(code: bytes, name: str = "ocirun_dev") -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd.

    On rejection the verifier's log is put in the OSError's message.
    """
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(65536)
    attr = _ProgLoadAttr(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
                         insns=ctypes.addressof(insns), license=ctypes.addressof(license),
                         log_level=1, log_size=len(log), log_buf=ctypes.addressof(log),
                         prog_name=name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        verifier = log.value.decode(errors="replace").strip().splitlines()
        detail = f" (verifier: {verifier[-1]})" if verifier else ""
        raise OSError(e.errno, f"{e.strerror}{detail}") from None


def prog_attach(cgroup_fd: int, prog_fd: int, flags: int = BPF_F_ALLOW_MULTI) -> None:
    _bpf(BPF_PROG_ATTACH, _AttachAttr(target_fd=cgroup_fd, attach_bpf_fd=prog_fd,
                                      attach_type=BPF_CGROUP_DEVICE, attach_flags=flags))


def prog_detach(cgroup_fd: int, prog_fd: int) -> None:
    _bpf(BPF_PROG_DETACH, _AttachAttr(target_fd=cgroup_fd, attach_bpf_fd=prog_fd,
                                      attach_type=BPF_CGROUP_DEVICE))


def prog_query(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached directly to the cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = _QueryAttr(target_fd=cgroup_fd, attach_type=BPF_CGROUP_DEVICE,
                      prog_ids=ctypes.addressof(ids), prog_cnt=64)
    _bpf(BPF_PROG_QUERY, attr)
    return list(ids[:attr.prog_cnt])


def prog_fd_by_id(prog_id: int) -> int:
    attr = (ctypes.c_uint32 * 4)(prog_id)
    return syscall("bpf", ctypes.c_int(BPF_PROG_GET_FD_BY_ID), ctypes.byref(attr),
                   ctypes.c_uint(ctypes.sizeof(attr)))
