"""Apply image layers to a rootfs without ever touching anything outside it.

Every entry's path is walked one component at a time from an fd on the
rootfs with O_NOFOLLOW, so a symlink planted by an earlier entry or layer can
never redirect a write, chmod, whiteout or hardlink; such an entry, like an
absolute path or `..`, is refused with an error naming the layer and entry.
Nodes are created with *at() calls relative to the resolved parent and their
metadata set through the fd we created them with.
"""

import errno
import os
import shutil
import stat
import tarfile

from ..errors import OciError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
DEFAULT_MAX_LAYER_BYTES = 64 << 30
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LayerError(OciError):
    def __init__(self, layer: str, entry: str, reason: str):
        super().__init__(f"layer {layer}: entry {entry!r}: {reason}; the image is corrupt or "
                         "hostile, refusing it")


def parse_id_map(text: str) -> list[tuple[int, int, int]]:
    """`--uid-map containerID:hostID:size[,...]` as used for user namespaces."""
    ranges = []
    for item in text.split(","):
        try:
            container, host, size = (int(x) for x in item.split(":"))
        except ValueError:
            raise OciError(f"id map {text!r}: each range must be containerID:hostID:size") from None
        if min(container, host) < 0 or size <= 0:
            raise OciError(f"id map {text!r}: ids must be >= 0 and sizes > 0")
        ranges.append((container, host, size))
    return ranges


def _shift(ranges, value: int, kind: str, layer: str, entry: str) -> int:
    if ranges is None:
        return value
    for container, host, size in ranges:
        if container <= value < container + size:
            return host + value - container
    raise LayerError(layer, entry, f"{kind} {value} is outside the --{kind}-map ranges")


_PIPE_CHUNK = 1 << 18
_PIPE_DEPTH = 4
_QUEUED_FILE_MAX = 1 << 20


def _gzip_chunks(raw, out_chunk: int):
    """Inflate a gzip stream (possibly several members) in big steps, never
    producing more than `out_chunk` bytes at once so a bomb cannot balloon memory."""
    import zlib
    pending = b""
    while True:
        inflater = zlib.decompressobj(wbits=31)
        data = pending
        while not inflater.eof:
            if not data:
                data = raw.read(_PIPE_CHUNK)
                if not data:
                    raise EOFError("compressed stream ended early")
            out = inflater.decompress(data, out_chunk)
            if out:
                yield out
            data = inflater.unconsumed_tail
            while data and not inflater.eof:
                out = inflater.decompress(data, out_chunk)
                if out:
                    yield out
                data = inflater.unconsumed_tail
        # What follows a member: another member, or zero padding (as gzip accepts).
        pending = inflater.unused_data.lstrip(b"\0")
        while not pending:
            more = raw.read(_PIPE_CHUNK)
            if not more:
                return
            pending = more.lstrip(b"\0")
        if pending[:1] != b"\x1f":
            raise OSError("trailing garbage after the compressed stream")


def _zstd_chunks(raw, out_chunk: int):
    import zstandard
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=_PIPE_CHUNK,
                                                        read_across_frames=True)
    while data := reader.read(out_chunk):
        yield data


def _plain_chunks(raw, out_chunk: int):
    while data := raw.read(out_chunk):
        yield data


class _Pipe:
    """The decompressed tar stream, produced by a background thread.

    Reading the blob, hashing it (in the verifying reader) and inflating it
    release the GIL, so they run on another core while this thread makes the
    files. The producer reads the blob to its end, so the digest is checked
    there; its errors are re-raised here, in order, after the data before them.
    At most `limit` decompressed bytes are produced (a decompression bomb).
    """

    def __init__(self, raw, chunks, limit: int, layer: str):
        import queue
        import threading
        self.queue = queue.Queue(_PIPE_DEPTH)
        self.chunk = memoryview(b"")
        self.cpos = 0   # in the chunk
        self.pos = 0    # in the whole stream
        self.finished = False
        self.cancelled = False
        self.thread = threading.Thread(target=self._produce, args=(raw, chunks, limit, layer),
                                       name="inflate", daemon=True)
        self.thread.start()

    def _put(self, item):
        import queue
        while not self.cancelled:
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _produce(self, raw, chunks, limit, layer):
        count = 0
        try:
            for data in chunks:
                count += len(data)
                if count > limit:
                    raise OciError(f"layer {layer} unpacks to more than {limit} bytes; refusing it as a "
                                   "decompression bomb (raise --max-layer-size if it is genuine)")
                self._put(data)
                if self.cancelled:
                    return
            while raw.read(_PIPE_CHUNK):   # trailing bytes still count for the digest
                pass
            self._put(None)
        except BaseException as e:
            if not isinstance(e, OciError):
                # Unreadable data is most often wrong data: if the digest is wrong, say that.
                try:
                    while raw.read(_PIPE_CHUNK):
                        pass
                except BaseException as digest_error:
                    e = digest_error
            self._put(e)

    def _fill(self) -> bool:
        """Make the current chunk non-empty; False at the end of the stream."""
        while self.cpos >= len(self.chunk):
            if self.finished:
                return False
            item = self.queue.get()
            if item is None or isinstance(item, BaseException):
                self.finished = True
                if item is None:
                    return False
                raise item
            self.chunk, self.cpos = memoryview(item), 0
        return True

    def pieces(self, size: int):
        """Up to `size` bytes as views on the chunks, without copying them."""
        while size > 0 and self._fill():
            piece = self.chunk[self.cpos:self.cpos + size]
            self.cpos += len(piece)
            self.pos += len(piece)
            size -= len(piece)
            yield piece

    def read(self, n: int = -1) -> bytes:
        """Exactly `n` bytes unless the stream ends first (as tarfile expects of a file)."""
        if n is None or n < 0:
            n = 1 << 62
        return b"".join(self.pieces(n))

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Forward only: tarfile skips what it does not read, and never goes back
        over a layer read in order."""
        if whence == os.SEEK_CUR:
            offset += self.pos
        elif whence != os.SEEK_SET:
            raise OSError("a layer stream can only be read in order")
        if offset < self.pos:
            raise OSError("a layer stream can only be read in order")
        for _ in self.pieces(offset - self.pos):
            pass
        return self.pos

    def close(self):
        """Stop the producer early (the consumer failed); it exits at its next chunk."""
        self.cancelled = True


class _Peek:
    def __init__(self, raw):
        self.raw = raw
        self.head = b""
        while len(self.head) < 4:
            data = raw.read(4 - len(self.head))
            if not data:
                break
            self.head += data

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                n = len(self.head)
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


def decompressed(raw, layer: str, max_bytes: int = DEFAULT_MAX_LAYER_BYTES) -> _Pipe:
    """The tar stream inside a layer blob, by its magic: gzip, zstd or plain."""
    peek = _Peek(raw)
    if peek.head[:2] == b"\x1f\x8b":
        chunks = _gzip_chunks(peek, _PIPE_CHUNK)
    elif peek.head == b"\x28\xb5\x2f\xfd":
        chunks = _zstd_chunks(peek, _PIPE_CHUNK)
    else:
        chunks = _plain_chunks(peek, _PIPE_CHUNK)
    return _Pipe(peek, chunks, max_bytes, layer)


def decompress_errors():
    """What gzip and zstd raise for damaged data (besides OSError)."""
    import zlib
    import zstandard
    return (zlib.error, zstandard.ZstdError)


def split_path(name: str, layer: str, entry: str | None = None) -> list[str]:
    """Components of an archive path; absolute paths and `..` are refused."""
    if name.startswith("/"):
        raise LayerError(layer, entry or name, "absolute paths are not allowed in a layer")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(layer, entry or name, "`..` would leave the rootfs")
    return parts


class _FileWriter:
    """Creates regular files in a second thread while the caller parses the tar.

    Making an inode costs this kernel far more than anything else in a layer,
    and the syscalls release the GIL, so two files are made at once. Each job
    names its directory by an fd the caller resolved (and dup'ed for us) and
    one path component, opened with O_EXCL|O_NOFOLLOW: a job can only ever
    create a new file in that directory. The caller flushes before any entry
    that could touch a queued path. The data are views on the decompressed
    chunks; `budget` bounds the bytes queued.
    """

    def __init__(self, applier, budget: int = 4 << 20):
        import queue
        import threading
        self.applier = applier
        self.jobs = queue.Queue()
        self.budget = budget
        self.queued = 0
        self.error = None          # (entry name, exception) of the first failure
        self.idle = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="files", daemon=True)
        self.thread.start()

    def submit(self, job):
        size = sum(len(piece) for piece in job[2])
        with self.idle:
            while self.queued and self.queued + size > self.budget:
                self.idle.wait()
            self.queued += size + 1
        self.jobs.put((job, size + 1))

    def _run(self):
        while (item := self.jobs.get()) is not None:
            job, cost = item
            parent, name = job[0], job[6]
            try:
                if self.error is None:
                    self.make(*job)
            except BaseException as e:
                self.error = (name, e)
            finally:
                os.close(parent)
                with self.idle:
                    self.queued -= cost
                    self.idle.notify_all()

    def make(self, parent, base, pieces, uid, gid, mode, name, pax_headers, mtime_ns) -> int:
        """Create the file `base` in `parent` from the data `pieces`; returns its length."""
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        written = 0
        try:
            for piece in pieces:
                _write_all(fd, piece)
                written += len(piece)
            # chown clears setuid bits and file capabilities, so it goes first.
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            self.applier._set_xattrs(fd, name, pax_headers)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        return written

    def flush(self):
        """Wait for every queued file; raise the first failure."""
        with self.idle:
            while self.queued:
                self.idle.wait()
        if self.error is not None:
            name, e = self.error
            self.error = None
            if isinstance(e, OSError) and not isinstance(e, OciError):
                if e.errno == errno.ENOSPC:
                    raise OciError(f"no space left while unpacking layer {self.applier.layer} into "
                                   f"{self.applier.rootfs}; free some space and run again") from None
                raise OciError(f"layer {self.applier.layer}: entry {name!r}: {e.strerror}") from None
            raise e

    def close(self):
        self.jobs.put(None)
        self.thread.join()


class LayerApplier:
    """Applies layers in order onto `rootfs`.

    `warn` receives one-line notices (e.g. device nodes we may not create).
    """

    def __init__(self, rootfs: str, uid_map=None, gid_map=None,
                 max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES, warn=None):
        self.rootfs = rootfs
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.max_layer_bytes = max_layer_bytes
        self.warn = warn or (lambda message: None)
        self.size = 0

    def apply(self, blob, layer: str):
        """Apply one layer from a readable `blob` (compressed or not) to the rootfs.

        `blob` is read to its end, so a verifying reader gets to check the digest.
        """
        stream = self.stream = decompressed(blob, layer, self.max_layer_bytes)
        self.layer = layer
        self.layer_paths: set[str] = set()
        self.layer_ancestors: set[str] = set()
        self.layer_written = 0
        self.dir_times: list[tuple[list[str], int]] = []
        self.root_fd = os.open(self.rootfs, _DIR_FLAGS)
        self.pending: set[str] = set()
        self.writer = _FileWriter(self)
        member = None
        try:
            try:
                with tarfile.open(fileobj=stream, mode="r:") as archive:
                    for member in archive:
                        self._entry(archive, member)
            except (tarfile.TarError, EOFError, *decompress_errors()) as e:
                _reveal_digest_error(stream)
                raise OciError(f"layer {layer} is not a valid tar archive ({e}); "
                               "the image is corrupt") from None
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise OciError(f"no space left while unpacking layer {layer} into {self.rootfs}; "
                                   "free some space and run again") from None
                if e.errno is None:  # gzip and zstd report bad data as bare OSErrors
                    _reveal_digest_error(stream)
                    raise OciError(f"layer {layer} cannot be decompressed ({e}); the image is corrupt") from None
                entry = member.name if member is not None else "(start)"
                raise OciError(f"layer {layer}: entry {entry!r}: {e.strerror}") from None
            self._flush()
            while stream.read(_PIPE_CHUNK):   # the producer verifies the digest at the end
                pass
            self._set_dir_times()
        finally:
            stream.close()
            self.writer.close()
            os.close(self.root_fd)

    # -- path resolution ------------------------------------------------

    def _open_dir(self, parts: list[str], entry: str, create: bool) -> int:
        """An fd on the directory `parts` below the rootfs, never via a symlink."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise LayerError(self.layer, entry, f"{'/'.join(parts[:i + 1])} does not exist")
                    os.mkdir(part, 0o755, dir_fd=fd)
                    self._mark(parts[:i + 1])
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.lstat(part, dir_fd=fd)
                    where = "/".join(parts[:i + 1])
                    if stat.S_ISLNK(st.st_mode):
                        raise LayerError(self.layer, entry, f"{where} is a symlink; "
                                         "writing through it could leave the rootfs") from None
                    raise LayerError(self.layer, entry, f"{where} is not a directory") from None
                os.close(fd)
                fd = next_fd
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- entries --------------------------------------------------------

    def _entry(self, archive, member):
        name = member.name
        parts = split_path(name, self.layer)
        if not parts:
            return
        base = parts[-1]
        path = "/".join(parts)
        if self.pending and (not (member.isreg() or member.isdir() or member.issym())
                             or base.startswith(WHITEOUT_PREFIX)
                             or any("/".join(parts[:i]) in self.pending for i in range(1, len(parts) + 1))):
            self._flush()
        parent = self._open_dir(parts[:-1], name, create=True)
        try:
            if name.rstrip("/").endswith("/.") and (st := _lstat(parent, base)) and stat.S_ISLNK(st.st_mode):
                # `link/.` names what the link points to, not the link itself.
                raise LayerError(self.layer, name, f"{path} is a symlink; writing through it could "
                                 "leave the rootfs")
            if base == OPAQUE_MARKER:
                self._clear_lower(parent, parts[:-1])
            elif base.startswith(WHITEOUT_PREFIX):
                target = base[len(WHITEOUT_PREFIX):]
                if target in ("", ".", "..") or target.startswith(WHITEOUT_PREFIX):
                    raise LayerError(self.layer, name, "malformed whiteout")
                if "/".join(parts[:-1] + [target]) not in self.layer_paths:
                    _remove(parent, target)
            elif member.islnk():
                self._hardlink(parent, base, member)
                self._mark(parts)
            else:
                self._node(archive, parent, base, parts, member)
                self._mark(parts)
        finally:
            os.close(parent)

    def _mark(self, parts: list[str]):
        """Record that this layer put something at `parts` (and so needs its parents)."""
        self.layer_paths.add("/".join(parts))
        for i in range(1, len(parts)):
            self.layer_ancestors.add("/".join(parts[:i]))

    def _node(self, archive, parent, base, parts, member):
        existing = _lstat(parent, base)
        if existing is not None and (not member.isdir() or not stat.S_ISDIR(existing.st_mode)):
            self._flush()   # a directory being replaced may hold queued files
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                if existing is not None:
                    _remove(parent, base)
                os.mkdir(base, 0o700, dir_fd=parent)
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
            try:
                self._metadata_fd(fd, member)
            finally:
                os.close(fd)
            self.dir_times.append((parts, int(member.mtime * 1e9)))
            return
        if existing is not None:
            _remove(parent, base)
        if member.isreg():
            # Sparse entries expand beyond what the compressed stream shows; count what we write.
            self.layer_written += member.size
            if self.layer_written > self.max_layer_bytes:
                raise OciError(f"layer {self.layer} unpacks to more than {self.max_layer_bytes} bytes; "
                               "refusing it as a decompression bomb (raise --max-layer-size if it is genuine)")
            if not member.issparse():
                # Straight from the decompressed chunks: tarfile's file objects copy them twice.
                self.stream.seek(member.offset_data)
                uid = _shift(self.uid_map, member.uid, "uid", self.layer, member.name)
                gid = _shift(self.gid_map, member.gid, "gid", self.layer, member.name)
                metadata = (uid, gid, member.mode & 0o7777, member.name, member.pax_headers,
                            int(member.mtime * 1e9))
                if member.size > _QUEUED_FILE_MAX:
                    # Big files are written here as they stream by: queued, they would sit in memory.
                    written = self.writer.make(parent, base, self.stream.pieces(member.size), *metadata)
                else:
                    pieces = list(self.stream.pieces(member.size))
                    written = sum(len(piece) for piece in pieces)
                    if written == member.size:
                        self.writer.submit((os.dup(parent), base, pieces, *metadata))
                        self.pending.add("/".join(parts))
                if written != member.size:
                    raise tarfile.ReadError("unexpected end of data")
                self.size += member.size
                return
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=parent)
            try:
                source = archive.extractfile(member)
                while data := source.read(_PIPE_CHUNK):
                    _write_all(fd, data)
                self.size += member.size
                self._metadata_fd(fd, member)
                os.utime(fd, ns=(int(member.mtime * 1e9),) * 2)
            finally:
                os.close(fd)
            return
        if member.issym():
            os.symlink(member.linkname, base, dir_fd=parent)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
            except PermissionError:
                self.warn(f"layer {self.layer}: skipped device node {member.name} "
                          "(not allowed to create devices here)")
                return
        elif member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=parent)
        else:
            self.warn(f"layer {self.layer}: skipped {member.name} of unsupported tar type {member.type!r}")
            return
        uid = _shift(self.uid_map, member.uid, "uid", self.layer, member.name)
        gid = _shift(self.gid_map, member.gid, "gid", self.layer, member.name)
        os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
        if not member.issym():
            # We just created this node ourselves, so it is not a symlink.
            os.chmod(base, member.mode & 0o7777, dir_fd=parent)
            self._xattrs(f"/proc/self/fd/{parent}/{base}", member)
        os.utime(base, ns=(int(member.mtime * 1e9),) * 2, dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, parent, base, member):
        target_parts = split_path(member.linkname, self.layer, member.name)
        if not target_parts:
            raise LayerError(self.layer, member.name, "hardlink to the rootfs itself")
        target_parent = self._open_dir(target_parts[:-1], member.name, create=False)
        try:
            target = _lstat(target_parent, target_parts[-1])
            if target is None:
                raise LayerError(self.layer, member.name, f"hardlink target {member.linkname} does not exist")
            if stat.S_ISDIR(target.st_mode):
                raise LayerError(self.layer, member.name, "hardlink to a directory")
            existing = _lstat(parent, base)
            if existing is not None:
                if (existing.st_dev, existing.st_ino) == (target.st_dev, target.st_ino):
                    return
                _remove(parent, base)
            os.link(target_parts[-1], base, src_dir_fd=target_parent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(target_parent)

    def _metadata_fd(self, fd, member):
        uid = _shift(self.uid_map, member.uid, "uid", self.layer, member.name)
        gid = _shift(self.gid_map, member.gid, "gid", self.layer, member.name)
        # chown clears setuid bits and file capabilities, so it goes first.
        os.fchown(fd, uid, gid)
        os.fchmod(fd, member.mode & 0o7777)
        self._xattrs(fd, member)

    def _flush(self):
        self.writer.flush()
        self.pending.clear()

    def _xattrs(self, target, member):
        self._set_xattrs(target, member.name, member.pax_headers)

    def _set_xattrs(self, target, entry: str, pax_headers: dict):
        for key, value in pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(target, name, raw)
            except OSError as e:
                if e.errno in (errno.EPERM, errno.ENOTSUP, errno.EACCES, errno.EINVAL):
                    self.warn(f"layer {self.layer}: could not set xattr {name} on {entry}: {e.strerror}")
                else:
                    raise

    def _clear_lower(self, dirfd, dir_parts):
        """Opaque directory: drop what lower layers put here, keep this layer's entries."""
        for name in os.listdir(dirfd):
            path = "/".join(dir_parts + [name])
            if path not in self.layer_paths and path not in self.layer_ancestors:
                _remove(dirfd, name)
                continue
            st = os.lstat(name, dir_fd=dirfd)
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
                try:
                    self._clear_lower(sub, dir_parts + [name])
                finally:
                    os.close(sub)

    def _set_dir_times(self):
        # Deepest first would not matter: setting a directory's time does not touch its parent's.
        for parts, mtime in self.dir_times:
            try:
                parent = self._open_dir(parts[:-1], "/".join(parts), create=False)
            except LayerError:
                continue
            try:
                if (st := _lstat(parent, parts[-1])) is not None and stat.S_ISDIR(st.st_mode):
                    os.utime(parts[-1], ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)


def _reveal_digest_error(stream):
    """Unreadable data is most often wrong data: if the digest is wrong, say that.

    Letting the producer read the rest of the blob lets the verifying reader
    raise its error (and evict a damaged cache entry); the declared size and
    the decompression bound limit the reading.
    """
    try:
        while stream.read(_PIPE_CHUNK):
            pass
    except OciError:
        raise
    except Exception:
        pass   # the damage itself is what the caller reports


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _lstat(dirfd, name):
    try:
        return os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return None


def _remove(dirfd, name):
    st = _lstat(dirfd, name)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)
