"""start: release the init that create left waiting on exec.fifo."""

import os
import select
import time

from ..errors import OciError
from ..hooks import oci_state, run_hooks
from ..log import logger
from ..state import ContainerState, Store, is_alive


def start(store: Store, container_id: str) -> None:
    with store.lock(container_id):
        state = store.load(container_id)
        status = store.status(state)
        if status != "created":
            raise OciError(f"cannot start container {container_id}: it is {status}, not created")
        fifo_path = store.fifo_path(container_id)
        if not _release(fifo_path, state):
            raise OciError(f"cannot start container {container_id}: its init exited before start")
        os.unlink(fifo_path)
        state.started = True
        store.save(state)
    run_hooks(state.config, "poststart", oci_state(state, "running"), warn=logger.warning)


def _release(fifo_path: str, state: ContainerState) -> bool:
    """Open the fifo's read end, which unblocks init's open for writing, and
    wait for init's byte. Non-blocking, so that an init that died in the
    meantime turns into an error instead of a hang."""
    fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            select.select([fd], [], [], 0.05)
            try:
                byte = os.read(fd, 1)
            except BlockingIOError:
                continue
            if byte == b"0":
                return True
            # End of file: init has not opened its end yet, or has died.
            if not is_alive(state):
                return False
            time.sleep(0.001)
    finally:
        os.close(fd)
