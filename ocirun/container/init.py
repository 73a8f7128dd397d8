"""The container's init: the process that becomes the container.

It is forked by create inside the new namespaces and walks the steps below in
the order the kernel needs them, reporting each milestone to create over the
channel. After "ready" it blocks opening the exec fifo; `start` opening the
other end releases it, and it execs the user's program in its own place.

Everything this process needs after pivot_root must already be imported:
the host's Python library is out of reach from then on.
"""

import ctypes
import os
import sys

from .. import hooks
from ..errors import OciError
from ..state import START_OK
from ..sys.libc import SYSCALL_NUMBERS, libc
from . import console, namespaces, process, rootfs
from .channel import Channel, report_error_and_exit

KEYCTL_JOIN_SESSION_KEYRING = 1



class InitOptions:
    """What create hands to init across the fork."""

    __slots__ = ("bundle", "console_sock", "container_id", "executable", "fifo_fd", "hook_state",
                 "no_new_keyring", "no_pivot", "ns_plan", "preserve_fds", "process_plan", "share_caller_tty",
                 "spec", "start_fifo")

    def __init__(self, container_id: str, spec: dict, bundle: str, ns_plan: namespaces.NamespacePlan,
                 process_plan: object, fifo_fd: int, console_sock: object, no_pivot: bool,
                 no_new_keyring: bool, preserve_fds: int, share_caller_tty: bool, hook_state: dict | None = None,
                 executable: str = "", start_fifo: int = -1):
        self.container_id = container_id
        self.spec = spec
        self.bundle = bundle
        self.ns_plan = ns_plan
        self.process_plan = process_plan
        self.fifo_fd = fifo_fd
        self.console_sock = console_sock  # socket.socket or None
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.share_caller_tty = share_caller_tty
        # Filled in along the way, used after `start`.
        self.hook_state = {} if hook_state is None else hook_state
        self.executable = executable
        self.start_fifo = start_fifo  # our end of exec.fifo once `start` has opened the other


def join_session_keyring(container_id: str) -> None:
    """A fresh session keyring, so keys of the host's session are not visible inside."""
    name = f"_ses.{container_id}".encode()
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(SYSCALL_NUMBERS["keyctl"]),
                          ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), ctypes.c_char_p(name))
    if result == -1 and ctypes.get_errno() not in (38, 1):  # ENOSYS, EPERM: keyrings unavailable
        raise OciError(f"cannot join a new session keyring: {os.strerror(ctypes.get_errno())}; "
                       "pass --no-new-keyring to skip it")


def run(channel: Channel, options: InitOptions, release_fd: int) -> None:
    """Never returns: ends in execve, or in _exit after reporting the error."""
    ready = False
    try:
        # Wait until the forking parent has told create our pid.
        os.read(release_fd, 1)
        os.close(release_fd)
        _setup(channel, options)
        ready = True
        _wait_for_start_and_exec(options)
    except BaseException as error:  # noqa: BLE001 - this process must never unwind into create's code
        if not ready:
            report_error_and_exit(channel, error)
        # After "ready", create is gone: `start` reads the reason from the
        # fifo, and the container's stderr gets it too, as with runc.
        message = str(error) if isinstance(error, OciError) else f"{type(error).__name__}: {error}"
        if options.start_fifo >= 0:
            try:
                os.write(options.start_fifo, message.encode())
            except OSError:
                pass
        sys.stderr.write(f"ocirun: {message}\n")
        sys.stderr.flush()
        os._exit(getattr(error, "exit_code", None) or 1)


def _setup(channel: Channel, options: InitOptions) -> None:
    spec, plan = options.spec, options.ns_plan
    if not options.share_caller_tty:
        os.setsid()
    if plan.new_user:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if plan.has("uts"):  # joined or new, as runc does
        namespaces.set_hostname(spec.get("hostname"), spec.get("domainname"))
    if "network" in plan.new:
        namespaces.bring_up_loopback()
    if not options.no_new_keyring:
        join_session_keyring(options.container_id)

    fs = rootfs.prepare(spec, options.bundle)
    channel.send("mounts-ready")
    state = channel.expect("runtime-hooks-done")["state"]
    hooks.run_hooks(spec, "createContainer", state)
    options.hook_state = state

    if (spec.get("hooks") or {}).get("startContainer"):
        hooks.preload()
    rootfs.enter(fs, options.no_pivot)
    if spec["process"].get("terminal") and options.console_sock is not None:
        console.take_over_terminal(options.console_sock, spec["process"].get("consoleSize"),
                                   prepare_slave=rootfs.bind_console)
    rootfs.finish(fs)

    process.apply_early(options.process_plan)
    process.switch_user(options.process_plan, options.hook_state)
    options.executable = process.resolve_executable(options.process_plan)
    channel.send("ready")
    channel.close()


def _wait_for_start_and_exec(options: InitOptions) -> None:
    # Opening a fifo for writing blocks until someone opens it for reading:
    # that someone is `start`. The fd was opened O_PATH before pivot_root.
    fifo = os.open(f"/proc/self/fd/{options.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.close(options.fifo_fd)
    options.start_fifo = fifo
    state = dict(options.hook_state, status="running")
    hooks.run_hooks(options.spec, "startContainer", state)
    # "0" says we got this far; the fifo then stays open until execve closes
    # it, so `start` returns once the user's program really runs, and sees
    # any error before that as text after the "0".
    os.write(fifo, START_OK)
    exec_prepared(options.process_plan, options.executable, keep={fifo},
                  preserve_fds=options.preserve_fds, listener_state=state)


def exec_prepared(plan, executable: str, *, keep: set[int], preserve_fds: int,
                  listener_state: dict | None) -> None:
    """The last steps before the user's program, shared by init and exec."""
    process.close_fds(keep | set(range(3, 3 + preserve_fds)))
    process.load_seccomp(plan, listener_state)
    try:
        os.execve(executable, plan.args, process.environment(plan))
    except OSError as e:
        raise OciError(f'exec: "{plan.args[0]}": {e.strerror.lower()}',
                       exit_code=126 if e.errno in (13, 8) else 127) from None
