"""The container's filesystem: mounts, devices, pivot_root, masked and read-only paths.

Runs in the container's init, in its own mount namespace, in three steps the
init calls in this order: prepare() before the create hooks, enter() to make
the rootfs `/`, finish() once the console is in place.

Every path inside the rootfs is opened with safepath (symlinks resolved as if
the rootfs were `/`) and every mount lands on `/proc/self/fd/N` of that
descriptor, so neither a hostile symlink in the image nor one swapped in
while we work can put a mount, a directory or a device node on the host.
"""

import errno
import os
import stat

from ..errors import ConfigError, OciError
from ..sys import mount as m
from ..sys import ns
from ..sys.mount import fd_path, why
from . import devices, mounts, safepath, sysctl

PROPAGATION = mounts.PROPAGATION_OPTIONS

# Files below /proc an engine may cover (lxcfs does), and nothing else: a
# bind over other /proc entries could hide what masking relies on.
PROC_BIND_ALLOWED = {
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
}

# statvfs f_flag bits -> the mount flags a bind remount must keep: in a user
# namespace the kernel refuses to drop the ones the host locked.
_ST_TO_MS = [(os.ST_NOSUID, m.MS_NOSUID), (os.ST_NODEV, m.MS_NODEV), (os.ST_NOEXEC, m.MS_NOEXEC),
             (os.ST_NOATIME, m.MS_NOATIME), (os.ST_NODIRATIME, m.MS_NODIRATIME),
             (os.ST_RELATIME, m.MS_RELATIME), (os.ST_RDONLY, m.MS_RDONLY)]


class Rootfs:
    __slots__ = ("path", "readonly_dev", "root_fd", "spec", "sys", "userns")

    def __init__(self, path: str, spec: dict, sys: object, userns: bool, root_fd: int | None = None,
                 readonly_dev: int = 0):
        self.path = path
        self.spec = spec
        self.sys = sys
        self.userns = userns
        self.root_fd = root_fd
        # The flags of a /dev mount that asked for "ro": populated first, then remounted.
        self.readonly_dev = readonly_dev


def _linux(spec: dict) -> dict:
    return spec.get("linux") or {}


def _has_namespace(spec: dict, kind: str) -> bool:
    return any(isinstance(entry, dict) and entry.get("type") == kind
               for entry in _linux(spec).get("namespaces") or [])


def root_path(spec: dict, bundle: str) -> str:
    path = (spec.get("root") or {}).get("path")
    if not path:
        raise ConfigError("root.path", "is required")
    full = os.path.realpath(os.path.join(bundle, path))
    if not os.path.isdir(full):
        raise ConfigError("root.path", f"{full} is not a directory")
    return full


def validate(spec: dict, bundle: str, check_host_namespaces: bool = True) -> None:
    """Everything prepare() would refuse, checked without touching anything.

    Call before forking the init so bad input leaves nothing behind; only
    there can joined namespaces be compared with the host's (for sysctl)."""
    root_path(spec, bundle)
    propagation = _linux(spec).get("rootfsPropagation")
    if propagation and propagation not in PROPAGATION:
        raise ConfigError("linux.rootfsPropagation",
                          f"{propagation!r} is not one of {', '.join(PROPAGATION)}")
    parsed = mounts.validate(spec, bundle)
    for i, (mount, options) in enumerate(zip(spec.get("mounts") or [], parsed)):
        _check_proc_destination(i, _normalize(mount["destination"]), mount, options)
    devices.validate(spec)
    sysctl.validate(spec, check_host_namespaces)


def prepare(spec: dict, bundle: str, sys=None) -> Rootfs:
    """Mount everything the config asks for into the rootfs (still seen at its host path)."""
    sys = sys or m.Syscalls()
    validate(spec, bundle, check_host_namespaces=False)
    r = Rootfs(path=root_path(spec, bundle), spec=spec, sys=sys,
               userns=_has_namespace(spec, "user"))
    propagation = _linux(spec).get("rootfsPropagation")
    _mount(sys, None, "/", None, PROPAGATION.get(propagation, m.MS_SLAVE | m.MS_REC),
           what="make / " + (propagation or "rslave"))
    _make_parent_private(r)
    _mount(sys, r.path, r.path, "bind", m.MS_BIND | m.MS_REC, what="bind the rootfs onto itself")
    r.root_fd = os.open(r.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _populate(r, bundle)
    except BaseException:
        os.close(r.root_fd)
        r.root_fd = None
        raise
    return r


def _populate(r: Rootfs, bundle: str) -> None:
    try:
        dev = safepath.lstat_in_root(r.root_fd, "/dev")
    except FileNotFoundError:
        dev = None
    if dev is not None and stat.S_ISLNK(dev.st_mode):
        raise OciError("the rootfs's /dev is a symlink; it must be a directory "
                       "(refusing to populate whatever it points to)")
    parsed = mounts.validate(r.spec, bundle)
    bind_dev = False
    for i, (mount, options) in enumerate(zip(r.spec.get("mounts") or [], parsed)):
        destination = _normalize(mount["destination"])
        if destination == "/dev":
            bind_dev = options.is_bind
            if not options.is_bind and options.flags & m.MS_RDONLY:
                # Devices go in first; finish() makes it read-only.
                options.flags &= ~m.MS_RDONLY
                r.readonly_dev = options.flags | m.MS_RDONLY
        _mount_entry(r, i, mount, options, bundle)
    if not bind_dev:
        _setup_dev(r)
    cwd = (r.spec.get("process") or {}).get("cwd")
    # Created now, before the root may turn read-only. Never below /proc: its
    # magic links (/proc/self/fd/N) are not paths to create, and process
    # setup refuses a cwd that leads out of the root.
    if cwd and safepath.components(cwd)[:1] != ["proc"]:
        try:
            os.close(safepath.mkdir_all(r.root_fd, cwd))
        except OSError as e:
            raise ConfigError("process.cwd", f"cannot create {cwd} in the rootfs: "
                              f"{why(e)}") from None


def _normalize(destination: str) -> str:
    return os.path.normpath("/" + destination).replace("//", "/")


def _mount(sys, source, target, fstype, flags, data=None, what=""):
    try:
        sys.mount(source, target, fstype, flags, data)
    except OSError as e:
        raise OciError(f"cannot {what or 'mount ' + str(target)}: {why(e)}") from None


def _make_parent_private(r: Rootfs) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    best = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if (r.path == point or r.path.startswith(point.rstrip("/") + "/")) and (
                    best is None or len(point) >= len(best[0])):
                optional = fields[6:fields.index("-")]
                best = (point, any(o.startswith("shared:") for o in optional))
    if best and best[1]:
        _mount(r.sys, None, best[0], None, m.MS_PRIVATE, what=f"make {best[0]} private")


def _check_proc_destination(i: int, destination: str, mount: dict, options) -> None:
    if destination == "/proc":
        if mount.get("type") == "proc" and not options.is_bind:
            return
        if options.is_bind and _is_procfs(mount.get("source") or ""):
            return
        raise ConfigError(f"mounts[{i}].destination", "only procfs may be mounted on /proc")
    if destination.startswith("/proc/") and destination not in PROC_BIND_ALLOWED:
        raise ConfigError(f"mounts[{i}].destination",
                          f"{destination} is inside /proc and not one of the files that may be "
                          "covered there")


def _is_procfs(path: str) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return m.fstatfs_type(fd) == m.PROC_SUPER_MAGIC
    finally:
        os.close(fd)


def _open_destination(r: Rootfs, i: int, destination: str, directory: bool) -> int:
    try:
        if directory:
            return safepath.mkdir_all(r.root_fd, destination)
        return safepath.create_file(r.root_fd, destination)
    except OSError as e:
        raise ConfigError(f"mounts[{i}].destination", f"cannot create {destination} in the "
                          f"rootfs: {why(e)}") from None


def _reopen(r: Rootfs, destination: str, before: int) -> int:
    """The destination again, now the new mount on top of it.

    It is looked up by name once more, so check that the name still leads
    where the first lookup did: a swapped symlink would show a different path."""
    fd = safepath.open_in_root(r.root_fd, destination)
    if os.readlink(fd_path(fd)) != os.readlink(fd_path(before)):
        os.close(fd)
        raise OciError(f"{destination} changed while it was being mounted; refusing to go on")
    return fd


def _mount_entry(r: Rootfs, i: int, mount: dict, options: mounts.MountOptions,
                 bundle: str) -> None:
    destination = _normalize(mount["destination"])
    fstype = mount.get("type") or ""
    if destination == "/":
        raise ConfigError(f"mounts[{i}].destination", "cannot mount over the root itself; "
                          "use root.path")
    if fstype in ("proc", "sysfs") or destination in ("/proc", "/sys"):
        try:
            st = safepath.lstat_in_root(r.root_fd, destination)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise OciError(f"mounts[{i}]: {destination} in the rootfs is "
                           f"{'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'}; "
                           f"{fstype or 'it'} can only be mounted on a real directory")
    if fstype == "cgroup" or (fstype == "cgroup2" and not options.is_bind):
        _mount_cgroup(r, i, destination, options)
        return
    if options.is_bind:
        source = mounts.bind_source(mount, bundle)
        directory = os.path.isdir(source)
    else:
        source = mount.get("source") or fstype
        directory = True
        try:
            st = safepath.lstat_in_root(r.root_fd, destination)
            directory = stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
        except FileNotFoundError:
            pass
    fd = _open_destination(r, i, destination, directory)
    try:
        # A symlink in the image may lead a harmless-looking destination to
        # /proc (the CVE-2019-16884 class): judge where it really landed.
        resolved = _path_in_root(r, fd)
        if resolved != destination:
            _check_proc_destination(i, resolved, mount, options)
        _mount_on(r, i, fd, destination, source, fstype, options)
    finally:
        os.close(fd)


def _path_in_root(r: Rootfs, fd: int) -> str:
    path = os.readlink(fd_path(fd))
    if path == r.path:
        return "/"
    if not path.startswith(r.path + "/"):
        raise OciError(f"{path} is outside the rootfs; refusing to mount on it")
    return path[len(r.path):]


def _mount_on(r: Rootfs, i: int, fd: int, destination: str, source: str, fstype: str,
              options: mounts.MountOptions) -> None:
    flags, data = options.flags, options.data_string
    where = f"mounts[{i}]"
    try:
        if options.extensions & {"idmap", "ridmap"}:
            _idmapped_bind(r, i, fd, source, options)
        elif options.is_bind:
            r.sys.mount(source, fd_path(fd), None, flags & (m.MS_BIND | m.MS_REC))
        else:
            try:
                r.sys.mount(source, fd_path(fd), fstype, flags & ~m.PROPAGATION_FLAGS, data)
            except PermissionError:
                if not (r.userns and fstype in ("sysfs", "mqueue")):
                    raise
                # A user namespace that does not own the network (sysfs) or
                # IPC (mqueue) namespace may not mount them: the host's, bound.
                host = "/sys" if fstype == "sysfs" else "/dev/mqueue"
                r.sys.mount(host, fd_path(fd), None, m.MS_BIND | m.MS_REC)
                options = mounts.MountOptions(flags=flags | m.MS_BIND,
                                              propagation=options.propagation,
                                              attr_set=options.attr_set,
                                              attr_clr=options.attr_clr)
        needs_remount = options.is_bind and flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT)
        if not (needs_remount or options.propagation or options.attr_set or options.attr_clr
                or "tmpcopyup" in options.extensions):
            return
        top = _reopen(r, destination, fd)
        try:
            if "tmpcopyup" in options.extensions:
                _copy_up(fd, top)
            if needs_remount:
                _remount_bind(r.sys, fd_path(top), flags)
            for propagation in options.propagation:
                r.sys.mount(None, fd_path(top), None, propagation)
            if options.attr_set or options.attr_clr:
                r.sys.mount_setattr(top, "", m.AT_EMPTY_PATH | m.AT_RECURSIVE,
                                    options.attr_set, options.attr_clr)
        finally:
            os.close(top)
    except OSError as e:
        hint = {errno.EINVAL: f"; check mounts[{i}].options",
                errno.ENODEV: f"; check mounts[{i}].type"}.get(e.errno, "")
        raise ConfigError(where, f"cannot mount {fstype or source} on {destination}: "
                          f"{why(e)}{hint}") from None


def _idmapped_bind(r: Rootfs, i: int, fd: int, source: str,
                   options: mounts.MountOptions) -> None:
    """A bind whose file owners are shifted by the mount's own id mappings."""
    mount = r.spec["mounts"][i]
    linux = _linux(r.spec)
    uid_map = mount.get("uidMappings") or linux.get("uidMappings")
    gid_map = mount.get("gidMappings") or linux.get("gidMappings")
    if not uid_map or not gid_map:
        raise ConfigError(f"mounts[{i}].uidMappings", "an idmap mount needs uidMappings and "
                          "gidMappings, on the mount or in linux")
    userns = _userns_with(uid_map, gid_map, f"mounts[{i}]")
    try:
        tree = r.sys.open_tree(-100, source, m.OPEN_TREE_CLONE | m.OPEN_TREE_CLOEXEC
                               | (m.AT_RECURSIVE if options.flags & m.MS_REC else 0))
        try:
            recursive = m.AT_RECURSIVE if "ridmap" in options.extensions else 0
            try:
                r.sys.mount_setattr(tree, "", m.AT_EMPTY_PATH | recursive,
                                    attr_set=m.MOUNT_ATTR_IDMAP, userns_fd=userns)
            except OSError as e:
                raise ConfigError(f"mounts[{i}].options", f"the filesystem of {source} cannot "
                                  f"be idmapped: {why(e)}") from None
            r.sys.move_mount(tree, "", fd, "", m.MOVE_MOUNT_F_EMPTY_PATH
                             | m.MOVE_MOUNT_T_EMPTY_PATH)
        finally:
            os.close(tree)
    finally:
        os.close(userns)


def _userns_with(uid_map: list, gid_map: list, where: str) -> int:
    """An fd of a new user namespace with these mappings, kept alive by nothing but the fd."""
    def lines(entries, field_name):
        try:
            return "".join(f"{int(e['containerID'])} {int(e['hostID'])} {int(e['size'])}\n"
                           for e in entries)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{where}.{field_name}", "each entry needs containerID, hostID "
                              "and size") from None

    uid_text, gid_text = lines(uid_map, "uidMappings"), lines(gid_map, "gidMappings")
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            ns.unshare(ns.CLONE_NEWUSER)
            # Our pid as the mounted /proc numbers it: in a new pid namespace
            # fork's return value names some other process there.
            os.write(ready_w, os.readlink("/proc/self").encode())
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        proc_pid = os.read(ready_r, 32).decode()
        if not proc_pid.isdigit():
            raise OciError("cannot create a user namespace for an idmap mount")
        for name, text in (("uid_map", uid_text), ("gid_map", gid_text)):
            try:
                with open(f"/proc/{proc_pid}/{name}", "w") as f:
                    f.write(text)
            except OSError as e:
                raise ConfigError(f"{where}.{name[:3]}Mappings",
                                  f"the kernel refused the mapping: {why(e)}") from None
        return os.open(f"/proc/{proc_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def _copy_up(lower: int, top: int) -> None:
    """tmpcopyup: the new tmpfs starts with what the directory under it held."""
    # /proc/self/fd/N of the fd opened before the mount is the covered directory.
    import shutil  # only tmpcopyup needs it, and this runs before pivot_root
    shutil.copytree(fd_path(lower), fd_path(top), symlinks=True, dirs_exist_ok=True)


def _locked_flags(target: str) -> int:
    flags = os.statvfs(target).f_flag
    return sum(ms for st, ms in _ST_TO_MS if flags & st and ms != m.MS_RDONLY)


def _remount_bind(sys, target: str, flags: int) -> None:
    """Apply ro/nosuid/... to a bind mount; a bind ignores them until remounted."""
    wanted = m.MS_BIND | m.MS_REMOUNT | (flags & ~(m.MS_REC | m.MS_BIND | m.PROPAGATION_FLAGS))
    try:
        sys.mount(None, target, None, wanted)
    except PermissionError:
        # Flags locked by the host (in a user namespace) must be restated.
        locked = _locked_flags(target)
        if flags & m.ATIME_FLAGS:
            locked &= ~m.ATIME_FLAGS
        sys.mount(None, target, None, wanted | locked)


def _setup_dev(r: Rootfs) -> None:
    for device in devices.DEFAULT_DEVICES + devices.validate(r.spec):
        devices.create(r.sys, r.root_fd, device, bind=r.userns)
    for directory in ("/dev/pts", "/dev/shm"):
        os.close(safepath.mkdir_all(r.root_fd, directory))
    devices.create_links(r.root_fd)


# ---- cgroups ---------------------------------------------------------------

def _own_cgroups() -> dict[str, str]:
    """Controller list (as in /proc/self/cgroup, "" for v2) -> our cgroup path."""
    result = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            result[controllers] = path
    return result


def _cgroup_hierarchies() -> list[tuple[str, str, str, str]]:
    """(name under /sys/fs/cgroup, fstype, controllers, host path of our cgroup) per hierarchy."""
    own = _own_cgroups()
    known = {c for controllers in own for c in controllers.split(",") if c}
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, point, root = fields[dash + 1], fields[4], fields[3]
            if fstype not in ("cgroup", "cgroup2") or os.path.dirname(point) != "/sys/fs/cgroup":
                continue
            if fstype == "cgroup":
                controllers = ",".join(o for o in fields[dash + 3].split(",") if o in known)
            else:
                controllers = ""
            path = own.get(controllers)
            if path is None or (fstype == "cgroup" and not controllers):
                continue
            relative = os.path.relpath(path, root)
            host = point if relative == "." else os.path.join(
                point, path.lstrip("/") if relative.startswith("..") else relative)
            found.append((os.path.basename(point), fstype, controllers, host))
    return found


def _cgroup_flags(options: mounts.MountOptions) -> int:
    flags = options.flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT | m.PROPAGATION_FLAGS)
    if not options.explicit_rw:
        # Writable cgroup files would let the container raise its own limits.
        flags |= m.MS_RDONLY
    return flags


def _host_is_cgroup2() -> bool:
    fd = os.open("/sys/fs/cgroup", os.O_PATH | os.O_CLOEXEC)
    try:
        return m.fstatfs_type(fd) == m.CGROUP2_SUPER_MAGIC
    finally:
        os.close(fd)


def _mount_cgroup(r: Rootfs, i: int, destination: str, options: mounts.MountOptions) -> None:
    flags = _cgroup_flags(options)
    cgroupns = _has_namespace(r.spec, "cgroup")
    where = f"mounts[{i}]"
    fd = _open_destination(r, i, destination, True)
    try:
        if _host_is_cgroup2():
            own = _own_cgroups().get("", "/")
            _mount_one_cgroup(r, fd, destination, "cgroup2", "",
                              os.path.join("/sys/fs/cgroup", own.lstrip("/")), flags, cgroupns,
                              options.data_string)
            return
        # v1: a tmpfs holding one directory per hierarchy, as on the host.
        _mount(r.sys, "tmpfs", fd_path(fd), "tmpfs",
               m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC, "mode=755",
               what=f"mount a tmpfs on {destination} ({where})")
        top = _reopen(r, destination, fd)
        try:
            for name, fstype, controllers, host in _cgroup_hierarchies():
                sub = safepath.mkdir_all(top, name)
                try:
                    _mount_one_cgroup(r, sub, f"{destination}/{name}", fstype, controllers,
                                      host, flags, cgroupns, None)
                finally:
                    os.close(sub)
                for alias in controllers.split(","):
                    if "," in name and alias and alias != name:
                        try:
                            os.symlink(name, alias, dir_fd=top)
                        except FileExistsError:
                            pass
            if flags & m.MS_RDONLY:
                r.sys.mount(None, fd_path(top), None,
                            m.MS_REMOUNT | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC | m.MS_RDONLY,
                            "mode=755")
        finally:
            os.close(top)
    except OSError as e:
        raise ConfigError(where, f"cannot mount cgroups on {destination}: {why(e)}") from None
    finally:
        os.close(fd)


def _mount_one_cgroup(r: Rootfs, fd: int, destination: str, fstype: str, controllers: str,
                      host: str, flags: int, cgroupns: bool, data: str | None) -> None:
    if cgroupns:
        data = ",".join(x for x in (controllers, data) if x) or None
        r.sys.mount(fstype, fd_path(fd), fstype, flags, data)
        return
    # Without a cgroup namespace a fresh mount would show the host's whole
    # tree: bind just our own cgroup instead, as runc does.
    r.sys.mount(host, fd_path(fd), None, m.MS_BIND | m.MS_REC)
    top = _reopen(r, destination, fd)
    try:
        _remount_bind(r.sys, fd_path(top), flags | m.MS_BIND)
    finally:
        os.close(top)


# ---- entering the rootfs -----------------------------------------------------

def enter(r: Rootfs, no_pivot: bool = False) -> None:
    """Make the rootfs `/`: pivot_root with the old root detached, or MS_MOVE + chroot."""
    sys = r.sys
    try:
        if no_pivot:
            sys.fchdir(r.root_fd)
            sys.mount(r.path, "/", None, m.MS_MOVE)
            sys.chroot(".")
        else:
            old_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sys.fchdir(r.root_fd)
                # pivot_root(".", ".") stacks the old root on top of the new
                # one, so it needs no directory inside the container to live in.
                sys.pivot_root(".", ".")
                sys.fchdir(old_root)
                # Detaching must not propagate to the host's mounts.
                sys.mount(None, ".", None, m.MS_SLAVE | m.MS_REC)
                sys.umount2(".", m.MNT_DETACH)
            finally:
                os.close(old_root)
        sys.chdir("/")
        propagation = _linux(r.spec).get("rootfsPropagation")
        if propagation:
            sys.mount(None, "/", None, PROPAGATION[propagation])
    except OSError as e:
        raise OciError(f"cannot make the rootfs the container's root "
                       f"({'chroot' if no_pivot else 'pivot_root'}): {why(e)}") from None
    finally:
        os.close(r.root_fd)
        r.root_fd = None


def _require_procfs(what: str) -> None:
    """After pivot_root, /proc/self/fd/N means what it says only if /proc is procfs
    and not a directory of the image (which could hold a planted self/fd/N)."""
    try:
        fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = None
    try:
        if fd is None or m.fstatfs_type(fd) != m.PROC_SUPER_MAGIC:
            raise OciError(f"{what} needs procfs on /proc: add a proc mount to mounts")
    finally:
        if fd is not None:
            os.close(fd)


def bind_console(pty_slave_path: str, sys=None) -> None:
    """/dev/console inside the (entered) root, with the pty slave bound onto it."""
    sys = sys or m.Syscalls()
    _require_procfs("a console (process.terminal)")
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parent, name = safepath.split_parent(root, "/dev/console")
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISCHR(st.st_mode):
                os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        finally:
            os.close(parent)
        fd = safepath.create_file(root, "/dev/console", 0o600)
        try:
            sys.mount(pty_slave_path, fd_path(fd), None, m.MS_BIND)
        finally:
            os.close(fd)
    except OSError as e:
        raise OciError(f"cannot set up /dev/console: {why(e)}") from None
    finally:
        os.close(root)


# ---- after the console ------------------------------------------------------

def finish(r: Rootfs) -> None:
    """sysctl, maskedPaths, readonlyPaths, read-only /dev and root: the last touches."""
    linux = _linux(r.spec)
    if linux.get("sysctl"):
        _require_procfs("linux.sysctl")
    sysctl.apply(r.spec)
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, path in enumerate(linux.get("readonlyPaths") or []):
            _readonly_path(r, root, path, f"linux.readonlyPaths[{i}]")
        masked = linux.get("maskedPaths") or []
        if masked:
            _mask_paths(r, root, masked)
        if r.readonly_dev:
            try:
                _remount_bind(r.sys, "/dev", r.readonly_dev)
            except OSError as e:
                raise OciError(f"cannot make /dev read-only: {why(e)}") from None
        if (r.spec.get("root") or {}).get("readonly"):
            try:
                _remount_bind(r.sys, "/", m.MS_RDONLY)
            except OSError as e:
                raise OciError(f"cannot make the root read-only (root.readonly): "
                               f"{why(e)}") from None
    finally:
        os.close(root)


def _open_existing(root: int, path: str) -> int | None:
    try:
        return safepath.open_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _readonly_path(r: Rootfs, root: int, path: str, field_name: str) -> None:
    fd = _open_existing(root, path)
    if fd is None:
        return
    try:
        _require_procfs(field_name)
        r.sys.mount(fd_path(fd), fd_path(fd), None, m.MS_BIND | m.MS_REC)
        top = safepath.open_in_root(root, path)
        try:
            _remount_bind(r.sys, fd_path(top), m.MS_RDONLY)
        finally:
            os.close(top)
    except OSError as e:
        raise ConfigError(field_name, f"cannot make {path} read-only: {why(e)}") from None
    finally:
        os.close(fd)


def _mask_paths(r: Rootfs, root: int, paths: list[str]) -> None:
    null = safepath.open_in_root(root, "/dev/null", follow=False)
    try:
        if not devices.is_null_device(os.fstat(null)):
            raise OciError("/dev/null in the container is not the null device (char 1:3); "
                           "refusing to mask linux.maskedPaths with it")
        for i, path in enumerate(paths):
            fd = _open_existing(root, path)
            if fd is None:
                continue
            try:
                _require_procfs(f"linux.maskedPaths[{i}]")
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    r.sys.mount("tmpfs", fd_path(fd), "tmpfs", m.MS_RDONLY, None)
                else:
                    r.sys.mount(fd_path(null), fd_path(fd), None, m.MS_BIND)
            except OSError as e:
                raise ConfigError(f"linux.maskedPaths[{i}]",
                                  f"cannot mask {path}: {why(e)}") from None
            finally:
                os.close(fd)
    finally:
        os.close(null)
