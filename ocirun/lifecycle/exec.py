"""exec: run another process in a running container, as `runc exec` does.

The new process joins every namespace of the container's init and its
cgroup, then goes through the same process setup as init (user,
capabilities, rlimits, no_new_privs, seccomp). As for create, a middle
process joins the namespaces and forks again so that the new process is
really inside the container's pid namespace.
"""

import copy
import json
import os

from ..container import namespaces, process
from ..container.channel import Channel, report_error_and_exit
from ..container import console
from ..container.init import exec_prepared
from ..errors import OciError
from ..state import Store
from .common import load_manager
from .run import become_subreaper, forward_signals, wait_for


def load_process_file(path: str) -> dict:
    try:
        with open(path) as f:
            document = json.load(f)
    except OSError as e:
        raise OciError(f"--process {path}: {e.strerror}") from None
    except ValueError as e:
        raise OciError(f"--process {path}: not valid JSON ({e})") from None
    if not isinstance(document, dict) or not document.get("args"):
        raise OciError(f"--process {path}: must be a process object with a non-empty args array")
    return document


def build_process(base: dict, args: list[str], *, tty: bool, cwd: str | None, env: list[str],
                  user: str | None, additional_gids: list[int], caps: list[str],
                  no_new_privs: bool, apparmor: str | None, process_label: str | None) -> dict:
    """runc's rule: start from the container's process and override what the flags say."""
    proc = copy.deepcopy(base)
    proc["args"] = list(args)
    proc["terminal"] = tty
    if cwd:
        proc["cwd"] = cwd
    if env:
        names = {e.split("=", 1)[0] for e in env}
        proc["env"] = [e for e in proc.get("env", []) if e.split("=", 1)[0] not in names] + list(env)
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise OciError(f"--user {user}: use numeric uid[:gid]")
        proc["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
    if additional_gids:
        proc.setdefault("user", {})["additionalGids"] = list(additional_gids)
    if caps:
        capabilities = proc.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            capabilities[kind] = sorted(set(capabilities.get(kind, [])) | set(caps))
    if no_new_privs:
        proc["noNewPrivileges"] = True
    if apparmor:
        proc["apparmorProfile"] = apparmor
    if process_label:
        proc["selinuxLabel"] = process_label
    return proc


def exec_in_container(store: Store, container_id: str, proc: dict, *, detach: bool = False,
                      pid_file: str | None = None, console_socket: str | None = None,
                      preserve_fds: int = 0, ignore_paused: bool = False) -> int:
    state = store.load(container_id)
    status = store.status(state)
    if status == "stopped":
        raise OciError(f"cannot exec in container {container_id}: it has stopped")
    if status == "paused" and not ignore_paused:
        raise OciError(f"cannot exec in container {container_id}: it is paused "
                       "(resume it, or pass --ignore-paused)")
    if proc.get("terminal") and not console_socket and detach:
        raise OciError("--tty with --detach needs --console-socket to hand the terminal to")
    spec = dict(state.config, process=proc)
    plan = process.prepare(spec, proc, preserve_fds=preserve_fds)
    console_sock = console.connect_console_socket(console_socket) if proc.get("terminal") and console_socket \
        else None
    if not detach:
        become_subreaper()
    parent, child = Channel.pair()
    middle = os.fork()
    if middle == 0:
        parent.close()
        try:
            _join_and_fork(child, state, plan, proc, console_sock, preserve_fds)
        except BaseException as error:  # noqa: BLE001 - a forked child must not return
            report_error_and_exit(child, error)
        os._exit(0)
    child.close()
    try:
        manager = load_manager(state)
        if manager is not None:
            manager.apply(middle)
        parent.send("cgroup-joined")
        pid = parent.expect("forked")["pid"]
        # The socket is close-on-exec: end of file without a word means execve worked.
        message = parent.recv()
        if message is not None:
            raise OciError(message.get("message", "exec failed"), exit_code=message.get("exit_code"))
    finally:
        parent.close()
        if console_sock is not None:
            console_sock.close()
        os.waitpid(middle, 0)
    if pid_file:
        from .create import write_pid_file
        write_pid_file(pid_file, pid)
    if detach:
        return 0
    forward_signals(pid, skip=set())
    return wait_for(pid)


def _join_and_fork(channel: Channel, state, plan, proc: dict, console_sock, preserve_fds: int) -> None:
    process.make_non_dumpable()
    channel.expect("cgroup-joined")
    paths = state.namespace_paths
    # Joining the mount namespace (last) also moves our root to the container's rootfs.
    namespaces.join_namespaces([(ns_type, paths[ns_type])
                                for ns_type in namespaces.JOIN_ORDER if ns_type in paths])
    pid = os.fork()
    if pid == 0:
        try:
            if proc.get("terminal"):
                os.setsid()
            _exec_user_process(plan, proc, console_sock, keep={channel.fileno()},
                               preserve_fds=preserve_fds)
        except BaseException as error:  # noqa: BLE001
            report_error_and_exit(channel, error)
    channel.send("forked", pid=pid)


def _exec_user_process(plan, proc: dict, console_sock, *, keep: set[int], preserve_fds: int) -> None:
    if console_sock is not None:
        console.take_over_terminal(console_sock, proc.get("consoleSize"))
    process.apply_early(plan)
    process.switch_user(plan)
    executable = process.resolve_executable(plan)
    exec_prepared(plan, executable, keep=keep, preserve_fds=preserve_fds, listener_state=None)
