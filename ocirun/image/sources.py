"""Where images come from: a registry (the default), an OCI layout directory,
an oci-archive tarball, or a `docker save` tarball.

Each source resolves to a `Resolved` image (manifest digest, platform, config,
layer descriptors) and then hands out one reader per layer, in order, that
verifies the layer's digest as it is read.
"""

import json
import os
import platform as host_platform
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import OciError
from .cache import BlobCache, Download, VerifyingReader, VerifyingWriter, stop_downloads
from .reference import Reference, validate_digest
from .registry import INDEX_TYPES, SCHEMA1_TYPES, RegistryClient

MANIFEST_MEDIA = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
MAX_CONFIG = 8 << 20
_MACHINE = {"x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"),
            "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
            "i686": ("386", None), "i386": ("386", None), "ppc64le": ("ppc64le", None),
            "s390x": ("s390x", None), "riscv64": ("riscv64", None)}


@dataclass
class Resolved:
    manifest_digest: str
    platform: dict
    config: dict
    layers: list[dict]
    size: int = 0
    extra: dict = field(default_factory=dict)


def parse_platform(text: str | None) -> dict:
    """`os/arch[/variant]`; by default the host's."""
    if not text:
        arch, variant = _MACHINE.get(host_platform.machine(), (host_platform.machine(), None))
        result = {"os": "linux", "architecture": arch}
        if variant:
            result["variant"] = variant
        return result
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise OciError(f"--platform {text!r}: use os/arch[/variant], e.g. linux/arm64/v8")
    result = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


def platform_text(p: dict) -> str:
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def select_from_index(index: dict, want: dict, explicit_variant: bool, where: str) -> dict:
    candidates = []
    for entry in index.get("manifests") or []:
        p = entry.get("platform") or {}
        if p.get("os") == want["os"] and p.get("architecture") == want["architecture"]:
            candidates.append(entry)
    if explicit_variant:
        candidates = [c for c in candidates if c["platform"].get("variant") == want.get("variant")]
    elif len(candidates) > 1 and want.get("variant"):
        preferred = [c for c in candidates if c["platform"].get("variant") in (want["variant"], None)]
        candidates = preferred or candidates
    if not candidates:
        available = sorted({platform_text(e.get("platform") or {}) for e in index.get("manifests") or []
                            if (e.get("platform") or {}).get("os") not in (None, "unknown")})
        raise OciError(f"{where} has no image for {platform_text(want)} (it has: "
                       f"{', '.join(available) or 'none'}); choose one with --platform")
    return candidates[0]


def parse_json(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise OciError(f"{what} is not valid JSON; the image is corrupt") from None
    if not isinstance(value, dict):
        raise OciError(f"{what} is not a JSON object; the image is corrupt")
    return value


def check_manifest(manifest: dict, media_type: str, where: str) -> None:
    if media_type in SCHEMA1_TYPES or manifest.get("schemaVersion") == 1:
        raise OciError(f"{where} uses the obsolete docker schema 1 manifest, which is not supported; "
                       "push it again with a current docker or skopeo")
    if not isinstance(manifest.get("config"), dict) or not isinstance(manifest.get("layers"), list):
        raise OciError(f"{where}: manifest lacks config or layers; the image is corrupt")
    for descriptor in [manifest["config"]] + manifest["layers"]:
        if not isinstance(descriptor, dict):
            raise OciError(f"{where}: malformed descriptor in manifest")
        validate_digest(descriptor.get("digest"), f"{where}: descriptor digest")
        if not isinstance(descriptor.get("size"), int) or descriptor["size"] < 0:
            raise OciError(f"{where}: descriptor {descriptor['digest']} has no valid size")
        if "encrypted" in str(descriptor.get("mediaType", "")):
            raise OciError(f"{where}: layer {descriptor['digest']} is encrypted; not supported")


def is_index(manifest: dict, media_type: str) -> bool:
    return media_type in INDEX_TYPES or ("manifests" in manifest and "layers" not in manifest)


class RegistrySource:
    def __init__(self, ref: Reference, client: RegistryClient, cache: BlobCache, jobs: int = 4):
        self.ref = ref
        self.client = client
        self.cache = cache
        self.jobs = jobs
        self.where = str(ref)

    def resolve(self, want: dict, explicit_variant: bool) -> Resolved:
        repo = self.ref.repository
        data, media_type, digest = self.client.get_manifest(repo, self.ref.ref)
        manifest = parse_json(data, f"manifest of {self.where}")
        chosen = dict(want)
        if is_index(manifest, media_type):
            entry = select_from_index(manifest, want, explicit_variant, self.where)
            chosen = entry.get("platform") or want
            data, media_type, digest = self.client.get_manifest(repo, validate_digest(entry.get("digest")))
            manifest = parse_json(data, f"manifest of {self.where}")
        check_manifest(manifest, media_type, self.where)
        config = self._config(manifest["config"])
        _check_platform(config, want, explicit_variant, self.where)
        return Resolved(digest, _image_platform(config, chosen), config, manifest["layers"],
                        sum(d["size"] for d in manifest["layers"]))

    def _config(self, descriptor: dict) -> dict:
        digest, size = descriptor["digest"], descriptor["size"]
        if size > MAX_CONFIG:
            raise OciError(f"{self.where}: image config is {size} bytes; refusing more than {MAX_CONFIG}")
        what = f"image config {digest}"
        if self.cache.has(digest, size):
            return parse_json(self.cache.read_verified(digest, size, what), what)
        response = self.client.request(f"{self.ref.repository}/blobs/{digest}",
                                       f"repository:{self.ref.repository}:pull", stream=True, what=what)
        data = self.client.read_limited(response, size, what)
        reader = VerifyingReader(_BytesReader(data), digest, size, what)
        reader.drain()
        self.cache.store_bytes(data, digest)
        return parse_json(data, what)

    def layer_readers(self, layers: list[dict], progress=None):
        """One verifying reader per layer; downloads run in parallel in the background."""
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="layer")
        readers = []
        downloads = []
        try:
            for index, descriptor in enumerate(layers):
                digest, size = descriptor["digest"], descriptor["size"]
                what = f"layer {digest}"
                if self.cache.has(digest, size):
                    if progress:
                        progress(index, size, size, cached=True)
                    readers.append(self.cache.open_verified(digest, size, what))
                    continue
                temp = self.cache.new_temp(digest)
                open(temp, "wb").close()
                download = Download(temp)
                downloads.append(download)
                download.future = pool.submit(self._download, descriptor, download, index, progress)
                readers.append(VerifyingReader(download.reader(), digest, size, what))
        except BaseException:
            # e.g. ^C or SIGTERM while the first downloads already run: the caller never sees them.
            for download in downloads:
                if download.future is None or download.future.cancel():   # never started
                    _unlink(download.path)
                    download.finish()
            stop_downloads(downloads)
            raise
        finally:
            pool.shutdown(wait=False)
        return readers, downloads

    def _download(self, descriptor: dict, download: Download, index: int, progress):
        digest, size = descriptor["digest"], descriptor["size"]
        temp = download.path
        try:
            with open(temp, "r+b") as f:
                out = VerifyingWriter(f, digest, size, f"layer {digest}")

                def grew(written):
                    if download.cancelled:
                        raise OciError(f"download of layer {digest} cancelled")
                    download.grew(written)
                    if progress:
                        progress(index, written, size)
                self.client.fetch_blob(self.ref.repository, descriptor, out, progress=grew)
                out.flush()
                out.check()
                os.fsync(f.fileno())
            self.cache.commit(temp, digest)
            download.finish()
        except BaseException as e:
            _unlink(temp)
            if isinstance(e, OSError) and not isinstance(e, OciError):
                e = OciError(f"cannot write layer {digest} to the cache {self.cache.root}: "
                             f"{e.strerror}; free some space or pass --cache DIR")
            download.finish(error=e)


class _BytesReader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        n = len(self.data) - self.pos if n is None or n < 0 else n
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(chunk)
        return chunk


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _image_platform(config: dict, chosen: dict) -> dict:
    result = {"os": config.get("os") or chosen.get("os"),
              "architecture": config.get("architecture") or chosen.get("architecture")}
    if config.get("variant") or chosen.get("variant"):
        result["variant"] = config.get("variant") or chosen.get("variant")
    return result


def _check_platform(config: dict, want: dict, explicit_variant: bool, where: str):
    got = (config.get("os"), config.get("architecture"))
    if None in got:
        return
    if got != (want["os"], want["architecture"]) or (
            explicit_variant and config.get("variant") and config.get("variant") != want.get("variant")):
        raise OciError(f"{where} is for {platform_text(config)}, not {platform_text(want)}; "
                       "choose another tag or --platform")


class LayoutSource:
    """An OCI image layout, as a directory (`oci:DIR[:TAG]`) or a tarball (`oci-archive:FILE`)."""

    def __init__(self, path: str, tag: str | None = None, archive: bool = False):
        self.path = path
        self.tag = tag
        self.where = f"{'oci-archive' if archive else 'oci'}:{path}"
        self.tar = None
        if archive:
            try:
                self.tar = tarfile.open(path, "r:*")
                self.members = {m.name.lstrip("./"): m for m in self.tar.getmembers() if m.isreg()}
            except (OSError, tarfile.TarError) as e:
                raise OciError(f"cannot read {path} as an OCI archive: {e}") from None
        elif not os.path.isdir(path):
            raise OciError(f"{path} is not a directory holding an OCI image layout")

    def _open(self, name: str):
        if self.tar is not None:
            member = self.members.get(name)
            if member is None:
                raise OciError(f"{self.where}: {name} is missing; the archive is incomplete")
            return self.tar.extractfile(member)
        try:
            return open(os.path.join(self.path, name), "rb")
        except FileNotFoundError:
            raise OciError(f"{self.where}: {name} is missing; the layout is incomplete") from None

    def _blob(self, digest: str):
        algorithm, hexpart = validate_digest(digest).split(":")
        return self._open(f"blobs/{algorithm}/{hexpart}")

    def _read_blob(self, descriptor: dict, limit: int = MAX_CONFIG) -> bytes:
        if descriptor.get("size", 0) > limit:
            raise OciError(f"{self.where}: {descriptor['digest']} is too large for a manifest or config")
        f = self._blob(descriptor["digest"])
        reader = VerifyingReader(f, descriptor["digest"], descriptor.get("size"), f"{self.where}: blob "
                                 f"{descriptor['digest']}")
        chunks = []
        while data := reader.read(1 << 16):
            chunks.append(data)
        return b"".join(chunks)

    def resolve(self, want: dict, explicit_variant: bool) -> Resolved:
        with self._open("index.json") as f:
            index = parse_json(f.read(MAX_CONFIG), f"{self.where}: index.json")
        entries = index.get("manifests") or []
        if self.tag:
            entries = [e for e in entries
                       if (e.get("annotations") or {}).get("org.opencontainers.image.ref.name") == self.tag]
            if not entries:
                raise OciError(f"{self.where}: no image tagged {self.tag!r} in index.json")
        if not entries:
            raise OciError(f"{self.where}: index.json lists no images")
        descriptor = entries[0] if len(entries) == 1 else select_from_index(
            {"manifests": entries}, want, explicit_variant, self.where)
        chosen = descriptor.get("platform") or want
        for _depth in range(4):
            media_type = descriptor.get("mediaType", "")
            manifest = parse_json(self._read_blob(descriptor), f"{self.where}: manifest")
            if not is_index(manifest, media_type):
                break
            descriptor = select_from_index(manifest, want, explicit_variant, self.where)
            chosen = descriptor.get("platform") or want
        else:
            raise OciError(f"{self.where}: indexes nested too deeply")
        check_manifest(manifest, media_type, self.where)
        config = parse_json(self._read_blob(manifest["config"]), f"{self.where}: image config")
        _check_platform(config, want, explicit_variant, self.where)
        return Resolved(descriptor["digest"], _image_platform(config, chosen), config,
                        manifest["layers"], sum(d["size"] for d in manifest["layers"]))

    def layer_readers(self, layers: list[dict], progress=None):
        readers = []
        for index, d in enumerate(layers):
            if progress:
                progress(index, d["size"], d["size"], cached=True)
            readers.append(_Lazy(lambda d=d: VerifyingReader(
                self._blob(d["digest"]), d["digest"], d["size"], f"{self.where}: layer {d['digest']}")))
        return readers, []


class DockerArchiveSource:
    """A `docker save` tarball: manifest.json naming the config and layer tars.

    Layers there are the uncompressed tars, whose sha256 is the config's
    diff_id, so that is what each is verified against.
    """

    def __init__(self, path: str):
        self.path = path
        self.where = f"docker-archive:{path}"
        try:
            self.tar = tarfile.open(path, "r:*")
            self.members = {m.name.lstrip("./"): m for m in self.tar.getmembers() if m.isreg()}
        except (OSError, tarfile.TarError) as e:
            raise OciError(f"cannot read {path} as a docker save archive: {e}") from None

    def _read(self, name: str) -> bytes:
        member = self.members.get(name.lstrip("./"))
        if member is None or member.size > MAX_CONFIG:
            raise OciError(f"{self.where}: {name} is missing or too large")
        return self.tar.extractfile(member).read()

    def resolve(self, want: dict, explicit_variant: bool) -> Resolved:
        import hashlib
        manifest = json.loads(self._read("manifest.json"))
        if not isinstance(manifest, list) or not manifest:
            raise OciError(f"{self.where}: manifest.json lists no images")
        entry = manifest[0]
        config_bytes = self._read(entry["Config"])
        config = parse_json(config_bytes, f"{self.where}: image config")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(entry.get("Layers") or []):
            raise OciError(f"{self.where}: the config lists {len(diff_ids)} layers, manifest.json "
                           f"{len(entry.get('Layers') or [])}; the archive is corrupt")
        layers = []
        for name, diff_id in zip(entry["Layers"], diff_ids):
            member = self.members.get(name.lstrip("./"))
            if member is None:
                raise OciError(f"{self.where}: layer {name} is missing")
            layers.append({"digest": validate_digest(diff_id), "size": member.size, "member": member})
        _check_platform(config, want, explicit_variant, self.where)
        digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        return Resolved(digest, _image_platform(config, want), config, layers,
                        sum(d["size"] for d in layers))

    def layer_readers(self, layers: list[dict], progress=None):
        readers = []
        for index, d in enumerate(layers):
            if progress:
                progress(index, d["size"], d["size"], cached=True)
            readers.append(_Lazy(lambda d=d: VerifyingReader(
                self.tar.extractfile(d["member"]), d["digest"], d["size"], f"{self.where}: layer {d['digest']}")))
        return readers, []


class _Lazy:
    """Opens the underlying reader on first read, so files are not all open at once."""

    def __init__(self, opener):
        self.opener = opener
        self.reader = None

    def read(self, n: int = -1) -> bytes:
        if self.reader is None:
            self.reader = self.opener()
        return self.reader.read(n)
