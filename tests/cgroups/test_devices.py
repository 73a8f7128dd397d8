"""Device rules: v1 lines, the v2 BPF program (interpreted here, and loaded for real)."""

import errno
import os
import re
import struct
import uuid

import pytest

from ocirun.cgroups import devices
from ocirun.errors import OciError

DENY_ALL = {"allow": False, "access": "rwm"}


def run_program(code: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """Interpret the instructions the assembler emits, as the kernel would."""
    ctx = struct.pack("<III", (sum(devices._ACCESS_CODE[c] for c in access) << 16)
                      | devices._TYPE_CODE[kind], major, minor)
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    pc = 0
    while True:
        op, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if op == devices.LDXW:
            assert src == 1, "only the context is ever read"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == devices.AND32_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif op == devices.RSH32_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == devices.MOV64_X:
            regs[dst] = regs[src]
        elif op == devices.MOV64_K:
            regs[dst] = imm
        elif op == devices.JNE_K:
            pc += off if regs[dst] != imm else 0
        elif op == devices.JEQ_K:
            pc += off if regs[dst] == imm else 0
        elif op == devices.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def program(rules):
    return devices.encode(devices.bpf_program(devices.normalize(rules)))


def test_default_deny():
    code = program([DENY_ALL])
    assert run_program(code, "c", 1, 3, "r") == 0


def test_last_matching_rule_wins():
    code = program([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}])
    assert run_program(code, "c", 1, 3, "r") == 1
    assert run_program(code, "c", 1, 3, "w") == 0
    assert run_program(code, "c", 1, 3, "rw") == 0
    assert run_program(code, "b", 1, 3, "r") == 0
    assert run_program(code, "c", 1, 5, "r") == 0


def test_allow_rule_needs_every_requested_access():
    code = program([DENY_ALL, {"allow": True, "type": "c", "major": 5, "minor": None, "access": "r"}])
    assert run_program(code, "c", 5, 77, "r") == 1
    assert run_program(code, "c", 5, 77, "rw") == 0
    assert run_program(code, "c", 6, 77, "r") == 0


def test_allow_all_rule_stops_the_program():
    insns = devices.bpf_program(devices.normalize([{"allow": True}]))
    assert insns[-2:] == [(devices.MOV64_K, 0, 0, 0, 1), (devices.EXIT, 0, 0, 0, 0)]
    assert run_program(devices.encode(insns), "b", 8, 0, "rwm") == 1


def test_instruction_encoding():
    # r0 = 1; exit; jne r4, 136, +3 -- checked against the kernel's struct bpf_insn layout.
    assert devices.encode([(devices.MOV64_K, 0, 0, 0, 1)]) == bytes([0xb7, 0, 0, 0, 1, 0, 0, 0])
    assert devices.encode([(devices.MOV64_X, 1, 3, 0, 0)]) == bytes([0xbf, 0x31, 0, 0, 0, 0, 0, 0])
    assert devices.encode([(devices.JNE_K, 4, 0, 3, 136)]) == bytes([0x55, 4, 3, 0, 136, 0, 0, 0])


def test_v1_lines():
    rules = devices.rules_for([DENY_ALL, {"allow": True, "type": "b", "major": 8, "access": "r"}],
                              [{"type": "u", "major": 4, "minor": 64}, {"type": "p"}])
    lines = devices.v1_lines(rules)
    assert lines[:3] == [("devices.deny", "a"), ("devices.deny", "a"), ("devices.allow", "b 8:* r")]
    assert ("devices.allow", "c 136:* rwm") in lines
    assert lines[-1] == ("devices.allow", "c 4:64 rwm")


@pytest.mark.parametrize("rule, field", [
    ({"allow": "yes"}, "linux.resources.devices[0].allow"),
    ({"allow": True, "type": "x"}, "linux.resources.devices[0].type"),
    ({"allow": True, "access": "rwx"}, "linux.resources.devices[0].access"),
    ({"allow": True, "major": -5}, "linux.resources.devices[0].major"),
])
def test_bad_rules(rule, field):
    with pytest.raises(OciError, match="^" + re.escape(f"config.json: {field}")):
        devices.normalize([rule])


UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def cgroup2_dir():
    if os.geteuid() != 0 or not os.path.isfile(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip(f"needs root and a cgroup2 tree at {UNIFIED}")
    path = os.path.join(UNIFIED, f"ocirun-test-cgroups-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    yield path
    os.rmdir(path)


def _open_in_cgroup(cgroup: str, device: str) -> int:
    """errno of opening device from a child placed in cgroup (0 if it opened)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            os.close(os.open(device, os.O_RDONLY))
        except OSError as e:
            code = e.errno
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    result = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    return result[0]


@pytest.mark.root
def test_bpf_program_loads_and_filters(cgroup2_dir):
    from ocirun.cgroups.fs import CgroupFS
    from ocirun.sys import bpf
    fs = CgroupFS()
    rules = devices.normalize([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                          "access": "rw"}])
    try:
        fs.set_device_program(cgroup2_dir, devices.encode(devices.bpf_program(rules)))
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EINVAL, errno.ENOSYS):
            pytest.skip(f"this kernel does not let us load device programs: {e}")
        raise
    assert _open_in_cgroup(cgroup2_dir, "/dev/null") == 0
    assert _open_in_cgroup(cgroup2_dir, "/dev/zero") == errno.EPERM
    # Replacing the program leaves exactly one attached.
    allow_zero = rules + [(True, "c", 1, 5, "r")]
    fs.set_device_program(cgroup2_dir, devices.encode(devices.bpf_program(allow_zero)))
    assert _open_in_cgroup(cgroup2_dir, "/dev/zero") == 0
    fd = os.open(cgroup2_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(bpf.prog_query(fd)) == 1
    finally:
        os.close(fd)
