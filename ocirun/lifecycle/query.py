"""state and list: what the store says about containers, with live status."""

import json

from ..errors import OciError
from ..state import ContainerState, Store


def state_document(store: Store, state: ContainerState) -> dict:
    """The spec's state plus runc's extras (rootfs, created, owner), as runc prints it."""
    status = store.status(state)
    document = state.spec_state(status)
    annotations = document.pop("annotations")
    if status == "stopped":
        document["pid"] = 0
    return {**document, "rootfs": state.rootfs, "created": state.created, "owner": state.owner,
            "annotations": annotations}


def state_json(store: Store, container_id: str) -> str:
    return json.dumps(state_document(store, store.load(container_id)), indent=2)


def list_containers(store: Store, fmt: str = "table", quiet: bool = False) -> str:
    documents = []
    for container_id in store.ids():
        try:
            documents.append(state_document(store, store.load(container_id)))
        except OciError:  # mid-create or just deleted: not listed, as runc does
            continue
    if quiet:
        return "\n".join(d["id"] for d in documents)
    if fmt == "json":
        return json.dumps(documents)
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"])
             for d in documents]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
