"""Build layers and images with tarfile, and push them to a registry, for the image tests."""

import gzip
import hashlib
import io
import json
import tarfile

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               None: "application/vnd.oci.image.layer.v1.tar"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entry(name, kind="file", data=b"", mode=None, uid=0, gid=0, link="", xattrs=None, mtime=1_700_000_000,
          major=0, minor=0):
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                 "hard": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid, info.mtime = uid, gid, mtime
    info.linkname = link
    info.devmajor, info.devminor = major, minor
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
    if kind == "file":
        info.size = len(data)
    return info, data


def layer_tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def compress(tar: bytes, how) -> bytes:
    if how == "gzip":
        return gzip.compress(tar, mtime=0)
    if how == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(tar)
    return tar


class Image:
    """Blobs and a manifest for one platform."""

    def __init__(self, layers, config=None, arch=None, os_="linux", variant=None, compression="gzip",
                 labels=None):
        if arch is None:  # the host's, so the image runs here and is picked by default
            from ocirun.image.sources import parse_platform
            host = parse_platform(None)
            arch, variant = host["architecture"], host.get("variant")
        self.blobs = {}
        descriptors, diff_ids = [], []
        for item in layers:
            entries, how = (item if isinstance(item, tuple) else (item, compression))
            tar = layer_tar(entries)
            blob = compress(tar, how)
            diff_ids.append(sha256(tar))
            descriptors.append({"mediaType": LAYER_TYPES[how], "digest": sha256(blob), "size": len(blob)})
            self.blobs[sha256(blob)] = blob
        image = {"architecture": arch, "os": os_, "config": dict(config or {}),
                 "rootfs": {"type": "layers", "diff_ids": diff_ids}, "created": "2024-01-01T00:00:00Z"}
        if variant:
            image["variant"] = variant
        if labels:
            image["config"]["Labels"] = labels
        self.config = json.dumps(image).encode()
        self.blobs[sha256(self.config)] = self.config
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(self.config), "size": len(self.config)},
            "layers": descriptors}).encode()
        self.digest = sha256(self.manifest)
        self.layers = descriptors
        self.platform = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}


def push_blob(base: str, repo: str, data: bytes):
    digest = sha256(data)
    if requests.head(f"{base}/v2/{repo}/blobs/{digest}").status_code == 200:
        return
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/")
    r.raise_for_status()
    location = r.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"})
    r.raise_for_status()


def push_manifest(base: str, repo: str, ref: str, data: bytes, media_type: str):
    r = requests.put(f"{base}/v2/{repo}/manifests/{ref}", data=data, headers={"Content-Type": media_type})
    r.raise_for_status()


def push_image(base: str, repo: str, tag: str, image: Image):
    for data in image.blobs.values():
        push_blob(base, repo, data)
    push_manifest(base, repo, tag, image.manifest, OCI_MANIFEST)


def push_index(base: str, repo: str, tag: str, images) -> str:
    for image in images:
        push_image(base, repo, image.digest, image)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": i.digest, "size": len(i.manifest), "platform": i.platform}
        for i in images]}).encode()
    push_manifest(base, repo, tag, index, OCI_INDEX)
    return sha256(index)


def write_layout(directory, image: Image, tag="v1"):
    """An OCI image layout directory holding `image`."""
    import os
    os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
    blobs = dict(image.blobs)
    blobs[image.digest] = image.manifest
    for digest, data in blobs.items():
        with open(os.path.join(directory, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
             "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)


CAP_NET_RAW_XATTR = bytes.fromhex("0000000200200000000000000000000000000000")  # v2, permitted net_raw


def busybox_entries():
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    return [entry("bin", "dir"), entry("bin/busybox", data=busybox, mode=0o755),
            entry("bin/sh", "sym", link="busybox"), entry("bin/echo", "sym", link="busybox"),
            entry("bin/id", "sym", link="busybox"), entry("bin/cat", "sym", link="busybox"),
            entry("etc", "dir"),
            entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n"),
            entry("etc/group", data=b"root:x:0:\ntester:x:1000:\nwheel:x:10:tester\naudio:x:29:other,tester\n"),
            entry("home", "dir"), entry("home/tester", "dir", uid=1000, gid=1000),
            entry("tmp", "dir", mode=0o1777)]


def feature_layers():
    """Layers exercising every kind of entry, whiteouts and opaque directories."""
    first = [entry("data", "dir"), entry("data/keep", data=b"keep"), entry("data/gone", data=b"x"),
             entry("data/gonedir", "dir"), entry("data/gonedir/f", data=b"x"),
             entry("opaque", "dir"), entry("opaque/old", data=b"old"), entry("opaque/sub", "dir"),
             entry("opaque/sub/old2", data=b"old"),
             entry("replace-dir", "dir"), entry("replace-dir/f", data=b"x"),
             entry("replace-link", "sym", link="data"),
             entry("setuid", data=b"#!", mode=0o4755), entry("setgid-dir", "dir", mode=0o2775),
             entry("sticky", "dir", mode=0o1777),
             entry("owned", data=b"o", uid=1234, gid=5678, mode=0o640)]
    second = [entry("data/.wh.gone"), entry("data/.wh.gonedir"),
              entry("opaque/new", data=b"new"), entry("opaque/.wh..wh..opq"),
              entry("replace-dir", "sym", link="data"),
              entry("replace-link", "dir"), entry("replace-link/inside", data=b"in"),
              entry("data/link-target", data=b"shared"), entry("data/hardlink", "hard", link="data/link-target"),
              entry("data/relsym", "sym", link="../data/keep"), entry("data/abssym", "sym", link="/etc/passwd"),
              entry("fifo", "fifo"), entry("dev-null", "chr", major=1, minor=3, mode=0o666),
              entry("cap", data=b"c", mode=0o755, xattrs={"security.capability": CAP_NET_RAW_XATTR,
                                                          "user.note": b"hello"}),
              entry("long/" + "d" * 120 + "/" + "f" * 150, data=b"long")]
    third = [entry("plain", data=b"uncompressed")]
    return [(first, "gzip"), (second, "zstd"), (third, None)]
