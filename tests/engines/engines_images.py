"""Offline OCI images for the engine tests, built from Debian's busybox-static.

The engines only ever see these images: podman loads them from an
oci-archive, containerd imports the same archive. Nothing touches a registry.
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time

BUSYBOX = "/bin/busybox"
# A fixed mtime keeps the layer digest stable, so the engines' caches and the
# archives agree across runs.
MTIME = 1700000000

ROOT_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
ROOT_GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n"
APP_UID = 1000
APP_GID = 1000


def _dir(tar, name, mode=0o755, uid=0, gid=0):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, MTIME
    tar.addfile(info)


def _file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, MTIME
    tar.addfile(info, io.BytesIO(data))


def _symlink(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, MTIME
    info.mode = 0o777
    tar.addfile(info)


def rootfs_layer(with_app_user):
    """An uncompressed tar of a busybox root filesystem."""
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True,
                             capture_output=True, text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc",
                  "sys", "dev", "root", "home", "var", "run", "data"):
            _dir(tar, d)
        _dir(tar, "tmp", 0o1777)
        with open(BUSYBOX, "rb") as f:
            _file(tar, "bin/busybox", f.read(), 0o755)
        for path in applets:
            if path != "bin/busybox":
                _symlink(tar, path, "/bin/busybox")
        passwd, group = ROOT_PASSWD, ROOT_GROUP
        if with_app_user:
            passwd += f"app:x:{APP_UID}:{APP_GID}:app:/home/app:/bin/sh\n"
            group += f"app:x:{APP_GID}:\n"
            _dir(tar, "home/app", 0o755, APP_UID, APP_GID)
        _file(tar, "etc/passwd", passwd.encode())
        _file(tar, "etc/group", group.encode())
    return buf.getvalue()


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def write_oci_archive(path, name, user="", with_app_user=False):
    """Write an oci-archive at PATH holding one image tagged NAME.

    NAME is a full reference (localhost/...:tag) so both podman and
    containerd keep it verbatim.
    """
    layer = rootfs_layer(with_app_user)
    compressed = gzip.compress(layer, mtime=0)
    layout = path + ".layout"
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    layer_desc = _blob(layout, compressed)
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                                    os.uname().machine),
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MTIME)),
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
            "User": user,
        },
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "tests/engines/images.py"}],
    }
    config_desc = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer_desc}],
    }
    manifest_desc = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **manifest_desc,
            "annotations": {"org.opencontainers.image.ref.name": name,
                            "io.containerd.image.name": name},
        }],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with tarfile.open(path, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout, entry), arcname=entry)
    return path
