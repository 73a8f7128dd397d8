"""Device access rules: v1 devices.allow/deny lines and the v2 BPF program.

A rule is the spec's LinuxDeviceCgroup normalised to a tuple
(allow, type, major, minor, access) with type in "abc", major/minor an int
or None for "any", and access a subset of "rwm". Later rules override earlier
ones, as writes to devices.allow/deny do on v1.
"""

import struct

from ..errors import ConfigError

# Always reachable in a container, as every engine expects (runc grants the same).
DEFAULT_ALLOWED = [
    (True, "b", None, None, "m"),
    (True, "c", None, None, "m"),
    (True, "c", 1, 3, "rwm"),     # null
    (True, "c", 1, 5, "rwm"),     # zero
    (True, "c", 1, 7, "rwm"),     # full
    (True, "c", 1, 8, "rwm"),     # random
    (True, "c", 1, 9, "rwm"),     # urandom
    (True, "c", 5, 0, "rwm"),     # tty
    (True, "c", 5, 2, "rwm"),     # ptmx
    (True, "c", 10, 200, "rwm"),  # net/tun
    (True, "c", 136, None, "rwm"),  # pts/*
]

_DEVICE_TYPES = {"c": "c", "b": "b", "u": "c", "p": None}


def normalize(rules: list | None, field: str = "linux.resources.devices") -> list[tuple]:
    out = []
    for i, rule in enumerate(rules or []):
        where = f"{field}[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise ConfigError(f"{where}.allow", "must be true or false")
        kind = rule.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise ConfigError(f"{where}.type", f"{kind!r} is not one of a, b, c")
        access = rule.get("access") or "rwm"
        if not isinstance(access, str) or set(access) - set("rwm"):
            raise ConfigError(f"{where}.access", f"{access!r} must be letters from rwm")
        numbers = []
        for key in ("major", "minor"):
            value = rule.get(key)
            if value is None or value == -1:
                numbers.append(None)
            elif isinstance(value, int) and 0 <= value < 2**32:
                numbers.append(value)
            else:
                raise ConfigError(f"{where}.{key}", f"{value!r} is not a device number (or -1 for any)")
        access = "".join(c for c in "rwm" if c in access)
        out.append((rule["allow"], kind, numbers[0], numbers[1], access))
    return out


def rules_for(resources_devices: list | None, linux_devices: list | None) -> list[tuple]:
    """The complete rule list: the spec's rules, then the defaults, then linux.devices.

    runc 1.1 does not allow linux.devices by itself (the engine adds rules for
    them); crun does. Pass linux_devices=None for runc's behaviour.
    """
    rules = normalize(resources_devices) + list(DEFAULT_ALLOWED)
    for i, dev in enumerate(linux_devices or []):
        kind = _DEVICE_TYPES.get(dev.get("type"))
        if kind is not None and dev.get("major") is not None and dev.get("minor") is not None:
            rules.append((True, kind, dev["major"], dev["minor"], "rwm"))
    return rules


def v1_lines(rules: list[tuple]) -> list[tuple[str, str]]:
    """(file, line) pairs to write in order, starting from "deny everything"."""
    writes = [("devices.deny", "a")]
    for allow, kind, major, minor, access in rules:
        target = "devices.allow" if allow else "devices.deny"
        if kind == "a" and major is None and minor is None and access == "rwm":
            writes.append((target, "a"))
            continue
        maj = "*" if major is None else str(major)
        mnr = "*" if minor is None else str(minor)
        writes.append((target, f"{kind} {maj}:{mnr} {access}"))
    return writes


# --- eBPF for BPF_PROG_TYPE_CGROUP_DEVICE -------------------------------------
# The context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# where access_type = (access << 16) | type.
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPE_CODE = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS_CODE = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

LDXW = 0x61       # BPF_LDX | BPF_MEM | BPF_W
AND32_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
RSH32_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
MOV64_X = 0xbf    # BPF_ALU64 | BPF_MOV | BPF_X
MOV64_K = 0xb7    # BPF_ALU64 | BPF_MOV | BPF_K
JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K
JEQ_K = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
EXIT = 0x95       # BPF_JMP | BPF_EXIT

# Registers after the prologue: r2 type, r3 access, r4 major, r5 minor; r1 is scratch.
_PROLOGUE = [
    (LDXW, 2, 1, 0, 0), (AND32_K, 2, 0, 0, 0xFFFF),
    (LDXW, 3, 1, 0, 0), (RSH32_K, 3, 0, 0, 16),
    (LDXW, 4, 1, 4, 0),
    (LDXW, 5, 1, 8, 0),
]
_NEXT = "next"  # placeholder offset: jump to the first instruction of the next rule


def _rule_block(allow: bool, kind: str, major, minor, access: str) -> list[tuple]:
    block = []
    if kind != "a":
        block.append((JNE_K, 2, 0, _NEXT, _TYPE_CODE[kind]))
    mask = sum(_ACCESS_CODE[c] for c in access)
    if mask != 7:
        block.append((MOV64_X, 1, 3, 0, 0))
        if allow:
            # An allow rule matches only when every requested access is granted by it.
            block.append((AND32_K, 1, 0, 0, ~mask & 7))
            block.append((JNE_K, 1, 0, _NEXT, 0))
        else:
            # A deny rule matches as soon as any requested access is in it.
            block.append((AND32_K, 1, 0, 0, mask))
            block.append((JEQ_K, 1, 0, _NEXT, 0))
    if major is not None:
        block.append((JNE_K, 4, 0, _NEXT, major))
    if minor is not None:
        block.append((JNE_K, 5, 0, _NEXT, minor))
    block += [(MOV64_K, 0, 0, 0, 1 if allow else 0), (EXIT, 0, 0, 0, 0)]
    return [(op, dst, src, len(block) - i - 1 if off == _NEXT else off, imm)
            for i, (op, dst, src, off, imm) in enumerate(block)]


def bpf_program(rules: list[tuple]) -> list[tuple]:
    """Instructions (opcode, dst, src, off, imm): the last matching rule decides, else deny."""
    insns = list(_PROLOGUE)
    for rule in reversed(rules):
        insns += _rule_block(*rule)
        _, kind, major, minor, access = rule
        if kind == "a" and major is None and minor is None and access == "rwm":
            return insns  # matches everything: later blocks would be unreachable
    return insns + [(MOV64_K, 0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]


def encode(insns: list[tuple]) -> bytes:
    """struct bpf_insn in the host's (little-endian) layout."""
    return b"".join(struct.pack("<BBhi", op, (src << 4) | dst, off, _s32(imm))
                    for op, dst, src, off, imm in insns)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value
