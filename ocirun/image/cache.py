"""A content-addressed blob cache shared by every bundle.

Blobs live at `<root>/blobs/<algorithm>/<hex>` and are only ever put there by
renaming a fully downloaded and verified temporary file, so a reader sees a
whole blob or none, and several bundle-from-hub processes may fill the cache
at once (they race to rename identical content). Every use re-verifies the
bytes as they stream by; a blob that no longer matches is removed.
"""

import hashlib
import os
import threading
import time

from ..errors import OciError
from .reference import validate_digest

DEFAULT_CACHE = "/var/cache/ocirun"
_CHUNK = 1 << 16


def hasher_for(digest: str):
    return hashlib.new(validate_digest(digest).split(":", 1)[0])


class VerifyingReader:
    """Pass bytes through while hashing; raise if the size or digest is wrong.

    The check fires on the read that reaches the end, so a consumer that
    streams to EOF never finishes with unverified data.
    """

    def __init__(self, raw, digest: str, size: int | None, what: str, on_bad=None):
        self.raw = raw
        self.digest = digest
        self.size = size
        self.what = what
        self.seen = 0
        self.hasher = hasher_for(digest)
        self.on_bad = on_bad
        self.verified = False

    def _fail(self, message):
        if self.on_bad:
            self.on_bad()
        raise OciError(message)

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else _CHUNK)
        self.seen += len(data)
        if self.size is not None and self.seen > self.size:
            self._fail(f"{self.what}: more than the {self.size} bytes the manifest declares; refusing it")
        self.hasher.update(data)
        if not data and not self.verified:
            self.check()
        return data

    def check(self):
        """At the end of the data: raise unless the size and digest are right."""
        if self.size is not None and self.seen != self.size:
            self._fail(f"{self.what}: got {self.seen} bytes, the manifest declares {self.size}")
        actual = f"{self.digest.split(':')[0]}:{self.hasher.hexdigest()}"
        if actual != self.digest:
            self._fail(f"{self.what}: content has digest {actual}, expected {self.digest}; "
                       "the registry or a proxy served wrong data")
        self.verified = True

    def drain(self):
        while self.read(_CHUNK):
            pass


class VerifyingWriter(VerifyingReader):
    """Hash bytes on their way into `out`, so a download is verified without
    reading it back; `check()` once everything is written."""

    def write(self, data: bytes):
        self.seen += len(data)
        if self.size is not None and self.seen > self.size:
            self._fail(f"{self.what}: more than the {self.size} bytes the manifest declares; refusing it")
        self.hasher.update(data)
        self.raw.write(data)

    def flush(self):
        self.raw.flush()


class Download:
    """A blob being written to the cache by one thread and read by another.

    The reader follows the temporary file as it grows, so extraction proceeds
    while the download is still running and layers need not wait for each
    other to arrive.
    """

    def __init__(self, path: str):
        self.path = path
        self.written = 0
        self.done = False
        self.error: BaseException | None = None
        self.cancelled = False
        self.cond = threading.Condition()
        self.future = None   # of the thread pool job running it

    def grew(self, written: int):
        with self.cond:
            self.written = written
            self.cond.notify_all()

    def finish(self, error: BaseException | None = None):
        with self.cond:
            self.done = True
            self.error = error
            self.cond.notify_all()

    def reader(self):
        return _FollowingReader(self)


def stop_downloads(downloads):
    """Cancel background downloads and wait, so none is left writing a cache temp file."""
    for download in downloads:
        download.cancelled = True
    for download in downloads:
        with download.cond:
            while not download.done:
                download.cond.wait()


class _FollowingReader:
    def __init__(self, download: Download):
        self.download = download
        # Opened now: the temporary name disappears when the finished blob is renamed.
        self.file = open(download.path, "rb")
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        d = self.download
        n = n if n is not None and n > 0 else _CHUNK
        with d.cond:
            while True:
                if d.error is not None:
                    raise d.error
                if d.written > self.pos or d.done:
                    break
                d.cond.wait()
            available = d.written - self.pos
        if available <= 0:
            self.file.close()
            return b""
        data = self.file.read(min(n, available))
        self.pos += len(data)
        return data


class BlobCache:
    def __init__(self, root: str = DEFAULT_CACHE):
        self.root = root

    def path(self, digest: str) -> str:
        algorithm, hexpart = validate_digest(digest).split(":", 1)
        return os.path.join(self.root, "blobs", algorithm, hexpart)

    def _ensure(self):
        try:
            for sub in ("tmp", "blobs/sha256", "blobs/sha512"):
                os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)
        except OSError as e:
            raise OciError(f"cannot create the blob cache {self.root}: {e.strerror}; "
                           "pass --cache DIR to use another place") from None

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = os.stat(self.path(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def open_verified(self, digest: str, size: int | None, what: str) -> VerifyingReader:
        """A reader over the cached blob that fails (and evicts it) if it is damaged."""
        path = self.path(digest)
        f = open(path, "rb")
        os.utime(path)  # prune goes by last use

        def evict():
            f.close()
            self.remove(digest)
        return VerifyingReader(f, digest, size, f"{what} (cached at {path}, now removed; run again)",
                               on_bad=evict)

    def read_verified(self, digest: str, size: int | None, what: str) -> bytes:
        reader = self.open_verified(digest, size, what)
        chunks = []
        while True:
            data = reader.read(_CHUNK)
            if not data:
                break
            chunks.append(data)
        reader.raw.close()
        return b"".join(chunks)

    def new_temp(self, digest: str) -> str:
        self._ensure()
        _, hexpart = validate_digest(digest).split(":", 1)
        return os.path.join(self.root, "tmp", f"{hexpart[:16]}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}")

    def commit(self, temp: str, digest: str):
        """Atomically publish a verified temp file under its digest."""
        os.chmod(temp, 0o644)
        os.replace(temp, self.path(digest))

    def store_bytes(self, data: bytes, digest: str):
        temp = self.new_temp(digest)
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self.commit(temp, digest)
        except OSError:
            _unlink(temp)
            raise

    def remove(self, digest: str):
        _unlink(self.path(digest))

    def entries(self):
        """(digest, size, last use) for every cached blob."""
        for algorithm in ("sha256", "sha512"):
            directory = os.path.join(self.root, "blobs", algorithm)
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in sorted(names):
                try:
                    st = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue
                yield f"{algorithm}:{name}", st.st_size, st.st_mtime

    def prune(self, older_than_seconds: float = 0.0) -> tuple[int, int]:
        """Remove blobs unused for `older_than_seconds` and stale temporary files.

        Returns (files removed, bytes freed). Temp files younger than a day are
        left alone: another bundle-from-hub may be writing them right now.
        """
        now = time.time()
        removed = freed = 0
        for digest, size, used in list(self.entries()):
            if now - used >= older_than_seconds:
                self.remove(digest)
                removed += 1
                freed += size
        tmp = os.path.join(self.root, "tmp")
        for name in os.listdir(tmp) if os.path.isdir(tmp) else []:
            path = os.path.join(tmp, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if now - st.st_mtime > 86400:
                _unlink(path)
                removed += 1
                freed += st.st_size
        return removed, freed


def _unlink(path: str):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
