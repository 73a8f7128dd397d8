"""start: release the init that create left waiting on exec.fifo."""

import os
import select
import time

from ..errors import OciError
from ..hooks import run_hooks
from ..log import logger
from ..state import START_OK, ContainerState, Store, is_alive


def start(store: Store, container_id: str) -> None:
    with store.lock(container_id):
        state = store.load(container_id)
        status = store.status(state)
        if status != "created":
            raise OciError(f"cannot start container {container_id}: it is {status}, not created")
        fifo_path = store.fifo_path(container_id)
        reply = _release(fifo_path, state)
        if reply != START_OK:
            os.unlink(fifo_path)
            if not reply:
                raise OciError(f"cannot start container {container_id}: its init exited before start")
            raise OciError(reply.removeprefix(START_OK).decode(errors="replace"))
        os.unlink(fifo_path)
        state.started = True
        store.save(state)
    run_hooks(state.config, "poststart", state.spec_state("running"), warn=logger.warning)


def _release(fifo_path: str, state: ContainerState) -> bytes:
    """Open the fifo's read end, which unblocks init's open for writing, and
    read what init says until execve closes its end: b"0" when the program
    runs, b"0" and a message when something failed after startContainer
    hooks, a message alone when they failed, nothing when init died first.
    Non-blocking, so that an init that died meanwhile cannot make us hang."""
    fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    reply = b""
    writer_seen = False
    try:
        while True:
            select.select([fd], [], [], 0.05)
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                writer_seen = True  # an open writer with nothing to say yet
                continue
            if chunk:
                reply += chunk
                writer_seen = True
                continue
            # End of file: init has closed its end (exec'd or died), or not opened it yet.
            if writer_seen or not is_alive(state):
                return reply
            time.sleep(0.001)
    finally:
        os.close(fd)
