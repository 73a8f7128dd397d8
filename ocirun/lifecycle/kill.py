"""kill: send a signal to the container's init, or with --all to every process in it."""

import os
import signal

from ..errors import OciError
from ..state import Store


def parse_signal(name: str) -> int:
    """Accept what runc accepts: KILL, SIGKILL, 9 (and the RTMIN+n forms)."""
    text = name.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.SIGRTMAX + 1:
            return number
    else:
        if not text.startswith("SIG"):
            text = "SIG" + text
        if text.startswith("SIGRTMIN+") and text[9:].isdigit():
            return signal.SIGRTMIN + int(text[9:])
        if text.startswith("SIGRTMAX-") and text[9:].isdigit():
            return signal.SIGRTMAX - int(text[9:])
        try:
            return int(signal.Signals[text])
        except KeyError:
            pass
    raise OciError(f"unknown signal {name!r}: use a name like TERM or SIGKILL, or a number")


def kill(store: Store, container_id: str, signal_name: str = "SIGTERM", all_processes: bool = False) -> None:
    sig = parse_signal(signal_name)
    with store.lock(container_id):
        state = store.load(container_id)
        status = store.status(state)
        if all_processes and state.cgroup:
            # Even once init is gone: without a pid namespace its children
            # live on, and containerd's shim sends `kill --all` to end them
            # (as runc does, this is no error when nothing is left).
            from ..cgroups import signal_all
            from .common import load_manager
            signal_all(load_manager(state), sig)
            return
        if status == "stopped":
            raise OciError(f"cannot kill container {container_id}: container not running")
        try:
            os.kill(state.pid, sig)
        except ProcessLookupError:
            raise OciError(f"cannot kill container {container_id}: container not running") from None
        if status == "paused" and sig == signal.SIGKILL:
            # A frozen (cgroup v1) process acts on SIGKILL only once thawed;
            # engines expect `kill KILL` to end a paused container, as runc's does.
            from .common import load_manager
            load_manager(state).thaw()
