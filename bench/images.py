"""Section 5: bundle-from-hub against skopeo copy + umoci unpack, pulling the
same multi-layer image from a local docker-registry, and the floor of this
machine: gunzip + tar of the same layers, with no network and no bookkeeping."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

from .common import BUNDLE_FROM_HUB, CACHE, Row, log, median, timed, unmount_under

IMAGE_VERSION = "v1"    # bump when the recipe below changes: the cache is keyed by it
TARGET_COMPRESSED = 100_000_000
MIRROR = "http://deb.debian.org/debian"
REPO_NAME = "bench/debian"


# ---- the image ------------------------------------------------------------

def _blob(layout: Path, data_path: Path) -> dict:
    digest = hashlib.sha256()
    with open(data_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    target = layout / "blobs" / "sha256" / digest.hexdigest()
    os.replace(data_path, target)
    return {"digest": "sha256:" + digest.hexdigest(), "size": target.stat().st_size}


def _layer_from_tar(layout: Path, tar_cmd: list[str]) -> tuple[dict, str]:
    """Run TAR_CMD (writing a tar to stdout) and gzip it into a blob; returns the
    blob's descriptor and the diff_id (the digest of the uncompressed tar)."""
    tmp = layout / "blobs" / "layer.tmp"
    diff = hashlib.sha256()
    proc = subprocess.Popen(tar_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6,
                                               mtime=0) as gz:
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            diff.update(chunk)
            gz.write(chunk)
    if proc.wait() not in (0, 1):   # 1: files changed while read, harmless here
        raise RuntimeError(f"{' '.join(tar_cmd)} failed")
    return _blob(layout, tmp), "sha256:" + diff.hexdigest()


def _whiteout_layer(layout: Path) -> tuple[dict, str]:
    """A layer that deletes files, a directory and the contents of another
    (an opaque directory), and adds a file: what a `RUN rm` and a `RUN rm -rf
    dir/*` leave in an image."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=b"", kind=tarfile.REGTYPE):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime, info.mode = kind, len(data), 1700000000, 0o644
            if kind == tarfile.DIRTYPE:
                info.mode, info.size = 0o755, 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("etc", kind=tarfile.DIRTYPE)
        add("etc/.wh.motd")
        add("etc/bench-release", b"ocirun bench image " + IMAGE_VERSION.encode() + b"\n")
        add("usr", kind=tarfile.DIRTYPE)
        add("usr/share", kind=tarfile.DIRTYPE)
        add("usr/share/doc", kind=tarfile.DIRTYPE)
        add("usr/share/doc/.wh..wh..opq")
        add("usr/share/doc/README", b"documentation removed\n")
        add("var", kind=tarfile.DIRTYPE)
        add("var/lib", kind=tarfile.DIRTYPE)
        add("var/lib/apt", kind=tarfile.DIRTYPE)
        add("var/lib/apt/.wh.lists")
    data = buf.getvalue()
    tmp = layout / "blobs" / "layer.tmp"
    tmp.write_bytes(gzip.compress(data, mtime=0))
    return _blob(layout, tmp), "sha256:" + hashlib.sha256(data).hexdigest()


def _debootstrap(into: Path) -> bool:
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=False, capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if shutil.which("debootstrap") is None:
        return False
    log("building the image's base with debootstrap (once; cached in " + str(CACHE) + ")")
    try:
        result = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(into),
                                 MIRROR], check=False, capture_output=True, text=True)
    finally:
        unmount_under(str(into))    # debootstrap mounts /proc and /sys inside while it works
    if result.returncode != 0:
        log("debootstrap failed, using a synthetic base: " + result.stderr.strip()[-200:])
        return False
    # What an image build does: no downloaded packages left in the image.
    shutil.rmtree(into / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    return True


def _filler(limit_bytes: int) -> list[str]:
    """Host libraries (paths relative to /) adding up to about LIMIT_BYTES:
    realistic, moderately compressible content."""
    chosen, total = [], 0
    libdir = Path("/usr/lib/x86_64-linux-gnu")
    for entry in sorted(libdir.iterdir()):
        if total >= limit_bytes:
            break
        if entry.is_file() and not entry.is_symlink() and entry.stat().st_size < 40_000_000:
            chosen.append(str(entry.relative_to("/")))
            total += entry.stat().st_size
    return chosen


def build_image(layout: Path, small: bool):
    """An OCI image layout at LAYOUT, tagged latest: a Debian base, a layer of
    Python's library, a layer of shared libraries topping it up to about 100 MB
    compressed, and a layer of whiteouts. SMALL: a few MB, from the busybox
    rootfs, for the quick mode."""
    from .common import BUSYBOX_ROOTFS
    (layout / "blobs" / "sha256").mkdir(parents=True)
    layers = []
    if small:
        layers.append(_layer_from_tar(layout, ["tar", "-C", str(BUSYBOX_ROOTFS),
                                               "--numeric-owner", "-cf", "-", "."]))
        layers.append(_layer_from_tar(layout, ["tar", "-C", "/", "-cf", "-",
                                               "usr/lib/python3.11/email"]))
    else:
        base = layout.parent / (layout.name + ".rootfs")
        shutil.rmtree(base, ignore_errors=True)
        try:
            if _debootstrap(base):
                layers.append(_layer_from_tar(layout, ["tar", "-C", str(base), "--numeric-owner",
                                                       "-cf", "-", "."]))
            else:
                layers.append(_layer_from_tar(layout, [
                    "tar", "-C", "/", "--numeric-owner", "--ignore-failed-read", "-cf", "-",
                    "etc", "usr/bin", "usr/sbin", "usr/share/perl", "var/lib/dpkg"]))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        layers.append(_layer_from_tar(layout, ["tar", "-C", "/", "-cf", "-",
                                               "usr/lib/python3.11"]))
        so_far = sum(desc["size"] for desc, _ in layers)
        if so_far < TARGET_COMPRESSED:
            # Shared libraries compress to about 40 %.
            layers.append(_layer_from_tar(layout, ["tar", "-C", "/", "-cf", "-", *_filler(
                int((TARGET_COMPRESSED - so_far) / 0.4))]))
    layers.append(_whiteout_layer(layout))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = {"architecture": arch, "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]}}
    tmp = layout / "blobs" / "config.tmp"
    tmp.write_text(json.dumps(config))
    config_desc = _blob(layout, tmp)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **desc}
                           for desc, _ in layers]}
    tmp.write_text(json.dumps(manifest))
    manifest_desc = _blob(layout, tmp)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def image_layout(work: Path, small: bool) -> Path:
    """The benchmark image: built once into /var/cache/ocirun-bench (small ones
    into WORK, they are quick to make)."""
    if small:
        layout = work / "image-small"
        build_image(layout, small=True)
        return layout
    layout = CACHE / f"image-{IMAGE_VERSION}"
    if not (layout / "index.json").exists():
        building = CACHE / f"image-{IMAGE_VERSION}.building"
        shutil.rmtree(building, ignore_errors=True)
        building.parent.mkdir(parents=True, exist_ok=True)
        build_image(building, small=False)
        os.replace(building, layout)
    return layout


def _layers(layout: Path) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return [layout / "blobs" / "sha256" / l["digest"].split(":", 1)[1] for l in manifest["layers"]]


# ---- the registry ---------------------------------------------------------

class Registry:
    """Debian's docker-registry on a free port of 127.0.0.1, with storage in WORK."""

    def __init__(self, work: Path):
        self.work = work
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None

    def __enter__(self):
        storage = self.work / "registry"
        storage.mkdir(parents=True)
        config = self.work / "registry.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {storage}\nhttp:\n  addr: {self.address}\n")
        self.log = open(self.work / "registry.log", "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("docker-registry did not start; see " + str(self.work / "registry.log"))

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---- the measurements -----------------------------------------------------

def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def images(work: Path, repeats: int, small: bool) -> list[Row]:
    layout = image_layout(work, small)
    layers = _layers(layout)
    compressed = sum(p.stat().st_size for p in layers)
    log(f"image: {len(layers)} layers, {compressed / 1e6:.1f} MB compressed")
    with Registry(work) as registry:
        ref = f"{registry.address}/{REPO_NAME}:latest"
        push = timed(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:latest",
                      f"docker://{ref}"], timeout=600)
        if not push.ok:
            raise RuntimeError("skopeo could not push the bench image: " + push.why())
        samples = {k: [] for k in ("cold", "warm", "skopeo+umoci cold", "skopeo+umoci warm",
                                   "floor")}
        peaks = {"bundle-from-hub": [], "umoci": []}
        failed = ""
        out = work / "out"
        out.mkdir()
        for i in range(repeats):
            order = ["ours", "theirs", "floor"]
            for what in (order if i % 2 == 0 else order[::-1]):
                if what == "ours" and not failed:
                    cache = _fresh(out / "bfh-cache")
                    cold = timed([BUNDLE_FROM_HUB, ref, str(_fresh(out / "bfh-cold")),
                                  "--plain-http", "--cache", str(cache)], timeout=900, rss=True)
                    warm = timed([BUNDLE_FROM_HUB, ref, str(_fresh(out / "bfh-warm")),
                                  "--plain-http", "--cache", str(cache)], timeout=900, rss=True) \
                        if cold.ok else cold
                    if cold.ok and warm.ok:
                        samples["cold"].append(cold.seconds)
                        samples["warm"].append(warm.seconds)
                        peaks["bundle-from-hub"].append(max(cold.maxrss_kib, warm.maxrss_kib))
                    else:
                        failed = (cold if not cold.ok else warm).why()
                elif what == "theirs":
                    oci = _fresh(out / "skopeo-layout")
                    cold = _skopeo_umoci(ref, oci, _fresh(out / "umoci-cold"))
                    warm = _skopeo_umoci(ref, oci, _fresh(out / "umoci-warm"))
                    if cold is None or warm is None:
                        raise RuntimeError("skopeo + umoci failed on the bench image")
                    samples["skopeo+umoci cold"].append(cold[0])
                    samples["skopeo+umoci warm"].append(warm[0])
                    peaks["umoci"].append(max(cold[1], warm[1]))
                elif what == "floor":
                    target = _fresh(out / "floor")
                    target.mkdir()
                    script = "".join(f'gzip -dc "{p}" | tar -xf - -C "{target}" && '
                                     for p in layers) + "true"
                    result = timed(["sh", "-c", script], timeout=900)
                    if result.ok:
                        samples["floor"].append(result.seconds)
            for leftover in out.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
    cold, warm = median(samples["cold"]), median(samples["warm"])
    note = f"bundle-from-hub failed: {failed}" if failed and cold is None else ""
    mb = f"{len(layers)} layers, {compressed / 1e6:.0f} MB"
    return [
        Row("images", f"cold bundle ({mb})", "s", cold, median(samples["skopeo+umoci cold"]),
            "skopeo+umoci", 0.5, "<= 0.5x skopeo+umoci", note=note, samples=samples),
        Row("images", "cold bundle vs the gunzip+tar floor", "s", cold, median(samples["floor"]),
            "gunzip+tar", 1.5, "<= 1.5x floor", note=note),
        Row("images", "warm bundle (blobs cached)", "s", warm, cold, "own cold bundle", 0.2,
            "<= 0.2x cold", note=note),
        Row("images", "warm bundle vs skopeo+umoci warm", "s", warm,
            median(samples["skopeo+umoci warm"]), "skopeo+umoci warm", None, "", note=note),
        Row("memory", "peak RSS of an image bundle", "MiB",
            _mib(median(peaks["bundle-from-hub"])), _mib(median(peaks["umoci"])),
            "skopeo/umoci (largest)", None, "", note=note),
    ]


def _mib(kib):
    return None if kib is None else kib / 1024


def _skopeo_umoci(ref: str, oci: Path, bundle: Path):
    copy = timed(["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}",
                  f"oci:{oci}:latest"], timeout=900, rss=True)
    unpack = timed(["umoci", "unpack", "--image", f"{oci}:latest", str(bundle)], timeout=900, rss=True) \
        if copy.ok else copy
    if not (copy.ok and unpack.ok):
        log("skopeo/umoci: " + unpack.why())
        return None
    return copy.seconds + unpack.seconds, max(copy.maxrss_kib, unpack.maxrss_kib)
