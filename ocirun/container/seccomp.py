"""linux.seccomp: translate the config into libseccomp rules, build the filter,
and hand a user-notification fd to the agent at listenerPath.

`translate` is pure (config -> Program) so the mapping is testable without
loading anything; `build` turns a Program into a libseccomp filter.
"""

import array  # noqa: F401 - socket.send_fds imports it inside the call, which fails after pivot_root
import json
import os
import socket

from ..errors import ConfigError, OciError
from ..log import logger
from ..sys import seccomp as libseccomp

EPERM = 1
MAX_SYSCALL_ARGS = 6

_PLAIN_ACTIONS = {
    "SCMP_ACT_KILL": libseccomp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": libseccomp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": libseccomp.ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": libseccomp.ACT_TRAP,
    "SCMP_ACT_ALLOW": libseccomp.ACT_ALLOW,
    "SCMP_ACT_LOG": libseccomp.ACT_LOG,
    "SCMP_ACT_NOTIFY": libseccomp.ACT_NOTIFY,
}
# These two carry a 16-bit value: the errno to return, or the ptracer's message.
_VALUED_ACTIONS = {"SCMP_ACT_ERRNO": libseccomp.ACT_ERRNO_BASE, "SCMP_ACT_TRACE": libseccomp.ACT_TRACE_BASE}
# libseccomp accepts errno values below the kernel's MAX_ERRNO (4095) only.
_HIGHEST_VALUE = {"SCMP_ACT_ERRNO": 4094, "SCMP_ACT_TRACE": 0xFFFF}
ACTION_NAMES = sorted([*_PLAIN_ACTIONS, *_VALUED_ACTIONS])

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": libseccomp.ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": libseccomp.ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": libseccomp.ATTR_CTL_SSB,
}


class Program:
    """A seccomp config resolved to libseccomp numbers."""

    __slots__ = ("arch_tokens", "attrs", "default_action", "listener_metadata", "listener_path", "rules",
                 "uses_notify")

    def __init__(self, default_action: int, arch_tokens: list[int] | None = None,
                 rules: list[tuple[int, int, list[tuple[int, int, int, int]]]] | None = None,
                 attrs: list[tuple[int, int]] | None = None, uses_notify: bool = False,
                 listener_path: str = "", listener_metadata: str = ""):
        self.default_action = default_action
        self.arch_tokens = [] if arch_tokens is None else arch_tokens
        # (action, syscall number, [(arg index, op, value, valueTwo), ...])
        self.rules = [] if rules is None else rules
        self.attrs = [] if attrs is None else attrs
        self.uses_notify = uses_notify
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata


def _action(name, errno_ret, field_name: str) -> int:
    if name in _PLAIN_ACTIONS:
        if errno_ret is not None:
            raise ConfigError(field_name, f"errnoRet only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {name}")
        return _PLAIN_ACTIONS[name]
    if name in _VALUED_ACTIONS:
        value = EPERM if errno_ret is None else errno_ret
        highest = _HIGHEST_VALUE[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= highest:
            raise ConfigError(field_name, f"{name} value {value!r} must be an integer from 0 to {highest}")
        return _VALUED_ACTIONS[name] | value
    raise ConfigError(field_name, f"unknown seccomp action {name!r}; use one of {', '.join(ACTION_NAMES)}")


def _condition(arg: dict, where: str) -> tuple[int, int, int, int]:
    index = arg.get("index")
    if not isinstance(index, int) or not 0 <= index < MAX_SYSCALL_ARGS:
        raise ConfigError(f"{where}.index", f"{index!r} is not a syscall argument index (0 to 5)")
    op = libseccomp.CMP_OPS.get(arg.get("op"))
    if op is None:
        raise ConfigError(f"{where}.op", f"unknown comparison {arg.get('op')!r}; use one of "
                          f"{', '.join(libseccomp.CMP_OPS)}")
    value, value_two = arg.get("value", 0), arg.get("valueTwo", 0)
    for name, v in (("value", value), ("valueTwo", value_two)):
        if not isinstance(v, int) or not 0 <= v < 1 << 64:
            raise ConfigError(f"{where}.{name}", f"{v!r} is not an unsigned 64-bit integer")
    return index, op, value, value_two


def translate(config: dict) -> Program:
    """Validate linux.seccomp and resolve every name; raises ConfigError naming the field."""
    base = "linux.seccomp"
    default_name = config.get("defaultAction")
    if default_name == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{base}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action; "
                          "use it for selected syscalls")
    default = _action(default_name, config.get("defaultErrnoRet"), f"{base}.defaultAction")
    program = Program(default_action=default,
                      listener_path=config.get("listenerPath") or "",
                      listener_metadata=config.get("listenerMetadata") or "")
    # libseccomp's default is to set no_new_privs when loading; process.noNewPrivileges decides that.
    program.attrs.append((libseccomp.ATTR_CTL_NNP, 0))

    for i, arch in enumerate(config.get("architectures") or []):
        token = libseccomp.arch_token(arch.removeprefix("SCMP_ARCH_").lower()) if isinstance(arch, str) else 0
        if not token:
            raise ConfigError(f"{base}.architectures[{i}]",
                              f"{arch!r} is not an architecture libseccomp {libseccomp.version()} knows")
        program.arch_tokens.append(token)

    for i, flag in enumerate(config.get("flags") or []):
        if flag not in FLAGS:
            raise ConfigError(f"{base}.flags[{i}]", f"unsupported seccomp flag {flag!r}; supported: "
                              f"{', '.join(FLAGS)}")
        program.attrs.append((FLAGS[flag], 1))

    for i, entry in enumerate(config.get("syscalls") or []):
        where = f"{base}.syscalls[{i}]"
        action = _action(entry.get("action"), entry.get("errnoRet"), f"{where}.action")
        if action == libseccomp.ACT_NOTIFY:
            program.uses_notify = True
        conditions = [_condition(arg, f"{where}.args[{j}]") for j, arg in enumerate(entry.get("args") or [])]
        # libseccomp refuses a rule with the default's action; it would change nothing anyway.
        if action == default:
            continue
        # Several conditions on one argument can never all hold at once, so
        # (like runc) each becomes its own rule, ORed, instead of one ANDed rule.
        indexes = [c[0] for c in conditions]
        groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
        for name in entry.get("names") or []:
            nr = libseccomp.syscall_number(name)
            if nr is None:
                logger.debug(f"{where}: unknown syscall {name!r} skipped")
                continue
            for group in groups:
                program.rules.append((action, nr, group))

    if program.uses_notify and not program.listener_path:
        raise ConfigError(f"{base}.listenerPath", "SCMP_ACT_NOTIFY is used but no listenerPath is set: "
                          "give the unix socket of the seccomp agent")
    return program


def build(program: Program) -> libseccomp.Filter:
    seccomp_filter = libseccomp.Filter(program.default_action)
    try:
        for attr, value in program.attrs:
            seccomp_filter.set_attr(attr, value)
        for token in program.arch_tokens:
            seccomp_filter.add_arch(token)
        for action, nr, conditions in program.rules:
            seccomp_filter.add_rule(action, nr, conditions)
    except OSError as e:
        seccomp_filter.release()
        raise OciError(f"config.json: linux.seccomp: libseccomp rejected the filter: {e.strerror}") from None
    return seccomp_filter


def connect_listener(path: str) -> socket.socket:
    """Connect now, while the host path is reachable; the fd goes over it just before exec."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise ConfigError("linux.seccomp.listenerPath", f"cannot connect to {path}: {e.strerror}; "
                          "is the seccomp agent running?") from None
    return sock


def listener_message(container_state: dict, metadata: str) -> bytes:
    """The runtime spec's container process state: what the agent needs to manage the fd."""
    return json.dumps({
        "ociVersion": container_state.get("ociVersion", "1.0.2"),
        "fds": ["seccompFd"],
        "pid": container_state.get("pid", 0),
        "metadata": metadata,
        "state": container_state,
    }).encode()


def send_listener_fd(sock: socket.socket, notify_fd: int, message: bytes) -> None:
    try:
        socket.send_fds(sock, [message], [notify_fd])
    except OSError as e:
        raise OciError(f"cannot send the seccomp notify fd to linux.seccomp.listenerPath: {e.strerror}") from None
    finally:
        sock.close()
        os.close(notify_fd)
