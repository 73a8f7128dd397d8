"""create (runtime.md "Operations"): everything up to the point where the
user's program is about to run, which `start` then releases.

    ocirun create ──fork──> stage1 ──fork──> init (the container)
        │                     │                │
        │ cgroup, id maps     │ joins/creates  │ mounts, hooks, pivot_root,
        │ hooks, state.json   │ namespaces     │ console, user, caps ...
        │                     │ exits          │ waits on exec.fifo

stage1 exists because a new pid (or time) namespace only applies to the
children of the process that creates it.
"""

import os
import pwd
import time

from ..config.load import load_bundle
from ..container import init as container_init
from ..container import namespaces, process, rootfs
from ..container.channel import Channel, InitExited, report_error_and_exit
from ..errors import OciError
from ..hooks import run_hooks
from ..log import logger
from ..state import ContainerState, Store, process_start_time, validate_id
from ..sys import ns as sysns
from .common import teardown


def create(store: Store, container_id: str, bundle: str, *, pid_file: str | None = None,
           console_socket: str | None = None, no_pivot: bool = False,
           no_new_keyring: bool = False, preserve_fds: int = 0, systemd_cgroup: bool = False,
           share_caller_tty: bool = False) -> ContainerState:
    validate_id(container_id)
    bundle = os.path.abspath(bundle)
    spec = load_bundle(bundle)
    proc = spec["process"]  # validation made sure there is one
    if proc.get("terminal") and not console_socket and not share_caller_tty:
        raise OciError("process.terminal is true but no --console-socket was given: "
                       "pass one, or set terminal to false")
    linux = spec.get("linux") or {}
    ns_plan = namespaces.plan_namespaces(linux)
    rootfs.validate(spec, bundle)
    process_plan = process.prepare(spec, preserve_fds=preserve_fds)
    from ..container.console import connect_console_socket
    console_sock = connect_console_socket(console_socket) \
        if proc.get("terminal") and console_socket else None

    store.reserve(container_id)
    state = ContainerState(
        id=container_id, bundle=bundle,
        rootfs=os.path.join(bundle, spec["root"]["path"]),
        created=_rfc3339_now(),
        owner=pwd.getpwuid(os.geteuid()).pw_name, annotations=spec.get("annotations") or {}, config=spec)
    try:
        with store.lock(container_id):
            manager = _make_cgroup(container_id, linux, systemd_cgroup)
            state.cgroup = manager.to_state()
            fifo_path = store.fifo_path(container_id)
            os.mkfifo(fifo_path, 0o622)
            os.chmod(fifo_path, 0o622)
            fifo_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
            try:
                options = container_init.InitOptions(
                    container_id=container_id, spec=spec, bundle=bundle, ns_plan=ns_plan,
                    process_plan=process_plan, fifo_fd=fifo_fd, console_sock=console_sock,
                    no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                    preserve_fds=preserve_fds, share_caller_tty=share_caller_tty)
                _launch(state, options, manager)
            finally:
                os.close(fifo_fd)
            store.save(state)
            if pid_file:
                write_pid_file(pid_file, state.pid)
    except BaseException:
        try:
            teardown(store, state, run_poststop=state.pid != 0)
        except Exception as cleanup_error:  # noqa: BLE001 - the first error is the one to report
            logger.warning(f"cleanup after failed create: {cleanup_error}")
        raise
    finally:
        if console_sock is not None:
            console_sock.close()
    return state


def _rfc3339_now() -> str:
    """Like runc's `created`: UTC with nanoseconds."""
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


def _make_cgroup(container_id: str, linux: dict, systemd: bool):
    from .. import cgroups
    manager = cgroups.new_manager(container_id, linux.get("cgroupsPath"), systemd=systemd)
    manager.create()
    return manager


def _launch(state: ContainerState, options, manager) -> None:
    parent, child = Channel.pair()
    stage1 = os.fork()
    if stage1 == 0:
        parent.close()
        try:
            _stage1(child, options)
        except BaseException as error:  # noqa: BLE001 - a forked child must not return
            report_error_and_exit(child, error)
        os._exit(0)
    child.close()
    try:
        _drive(parent, stage1, state, options, manager)
    except InitExited:
        if manager.oom_count():
            raise OciError("container init was OOM-killed while setting up: "
                           "config.json: linux.resources.memory.limit is too low") from None
        raise
    finally:
        parent.close()
        try:
            os.waitpid(stage1, 0)
        except ChildProcessError:
            pass


def _drive(channel: Channel, stage1: int, state: ContainerState, options, manager) -> None:
    """The parent's half of the handshake, step for step against _stage1 and init."""
    linux = options.spec.get("linux") or {}
    # Before stage1 unshares the cgroup namespace, so that its root is our cgroup.
    manager.apply(stage1)
    manager.set(linux.get("resources") or {})
    channel.send("cgroup-joined")
    if options.ns_plan.new_user:
        channel.expect("userns-created")
        namespaces.write_id_mappings(stage1, linux)
        channel.send("id-maps-written")
    state.pid = channel.expect("init-forked")["pid"]
    state.pid_start = process_start_time(state.pid) or 0
    channel.expect("mounts-ready")
    state.namespace_paths = namespaces.namespace_paths(state.pid, options.ns_plan)
    hook_state = state.spec_state("creating")
    run_hooks(options.spec, "prestart", hook_state)
    run_hooks(options.spec, "createRuntime", hook_state)
    channel.send("runtime-hooks-done", state=hook_state)
    channel.expect("ready")


def _stage1(channel: Channel, options) -> None:
    process.make_non_dumpable()
    plan = options.ns_plan
    channel.expect("cgroup-joined")
    namespaces.join_namespaces(plan.join)
    if plan.new_user:
        namespaces.unshare(sysns.CLONE_NEWUSER, "user")
        channel.send("userns-created")
        channel.expect("id-maps-written")
    flags = plan.unshare_flags()
    if flags:
        namespaces.unshare(flags, ", ".join(t for t in plan.new if t != "user"))
    offsets = (options.spec.get("linux") or {}).get("timeOffsets")
    if "time" in plan.new and offsets:
        namespaces.write_time_offsets(offsets)
    release_read, release_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(release_write)
        container_init.run(channel, options, release_read)
    os.close(release_read)
    channel.send("init-forked", pid=pid)
    os.close(release_write)


def write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise OciError(f"--pid-file {path}: {e.strerror}") from None
