"""delete: remove a container's resources once its process is gone.

runc (and so engines) differ from the spec in one way here: a container that
is `created` but never started is killed and deleted without --force.
"""

import os

from ..errors import OciError
from ..state import Store, validate_id
from .common import teardown


def delete(store: Store, container_id: str, force: bool = False) -> None:
    with store.lock(container_id):
        if force and not os.path.exists(os.path.join(store.dir(container_id), "state.json")):
            # A create that died before it wrote its state has nothing else to clean up
            # (we hold the lock, so no create is still working on it).
            store.remove(container_id)
            return
        state = store.load(container_id)
        status = store.status(state)
        if status in ("running", "paused") and not force:
            raise OciError(f"cannot delete container {container_id} that is {status}: "
                           "stop it first or use delete --force")
        teardown(store, state)


def delete_command(store: Store, container_id: str, force: bool = False) -> None:
    """`ocirun delete`: like runc, deleting what is already gone is fine with --force."""
    validate_id(container_id)
    if force and not store.exists(container_id):
        return
    delete(store, container_id, force)
