"""Make a bundle: resolve the image, apply its layers, write config.json.

Everything is built in a temporary directory beside the destination and
renamed into place at the end, so a failure leaves no half-written bundle.
"""

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from ..errors import OciError
from .cache import stop_downloads
from .imageconfig import runtime_config
from .layers import DEFAULT_MAX_LAYER_BYTES, LayerApplier


@dataclass
class Summary:
    reference: str
    digest: str
    platform: str
    layers: int
    size: int
    unpacked: int
    seconds: float


def build_bundle(source, destination: str, want: dict, explicit_variant: bool = False,
                 command: list[str] | None = None, tty: bool = False, force: bool = False,
                 uid_map=None, gid_map=None, max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES,
                 progress_for=None, warn=None) -> Summary:
    """Write the bundle for `source` (a sources.* object) at `destination`.

    `progress_for(layers)`, once the layer descriptors are known, returns a
    callback: `progress(index, done, total, cached=False)` as layers arrive,
    `progress(index, None, None, applied=True)` when one has been applied.
    """
    from .sources import platform_text
    started = time.monotonic()
    destination = os.path.abspath(destination)
    if os.path.lexists(destination) and not force:
        raise OciError(f"{destination} already exists; remove it or pass --force to replace it")
    parent = os.path.dirname(destination)
    if not os.path.isdir(parent):
        raise OciError(f"{parent} does not exist; create it first")
    resolved = source.resolve(want, explicit_variant)
    progress = progress_for(resolved.layers) if progress_for else None
    try:
        work = tempfile.mkdtemp(prefix=f".{os.path.basename(destination)}.", dir=parent)
    except OSError as e:
        raise OciError(f"cannot create a temporary bundle in {parent}: {e.strerror}") from None
    downloads = []
    try:
        rootfs = os.path.join(work, "rootfs")
        os.mkdir(rootfs, 0o755)
        applier = LayerApplier(rootfs, uid_map, gid_map, max_layer_bytes, warn)
        readers, downloads = source.layer_readers(resolved.layers, progress)
        for index, (descriptor, reader) in enumerate(zip(resolved.layers, readers)):
            applier.apply(reader, f"{index + 1}/{len(readers)} ({descriptor['digest'][:19]})")
            if progress:
                progress(index, None, None, applied=True)
        spec = runtime_config(resolved.config, rootfs, command, tty, resolved.platform)
        with open(os.path.join(work, "config.json"), "w") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")
        os.chmod(work, 0o755)
        if os.path.lexists(destination):
            _replace(work, destination)
        else:
            os.rename(work, destination)
    except OSError as e:
        _cleanup(work, downloads)
        raise OciError(f"cannot write the bundle at {destination}: {e.strerror}"
                       f"{'; free some space and run again' if e.errno == 28 else ''}") from None
    except BaseException:
        _cleanup(work, downloads)
        raise
    return Summary(str(getattr(source, "where", "")), resolved.manifest_digest,
                   platform_text(resolved.platform), len(resolved.layers), resolved.size,
                   applier.size, time.monotonic() - started)


def _replace(work: str, destination: str):
    """--force: swap the new bundle in, then remove the old one."""
    old = f"{work}.old"
    os.rename(destination, old)
    try:
        os.rename(work, destination)
    except OSError:
        os.rename(old, destination)
        raise
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old)
    else:
        os.unlink(old)


def _cleanup(work: str, downloads):
    stop_downloads(downloads)
    shutil.rmtree(work, ignore_errors=True)
