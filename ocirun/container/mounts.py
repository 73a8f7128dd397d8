"""The `mounts[].options` vocabulary, turned into mount(2) flags, data and propagation.

The words are those runc accepts; anything else that is not a `key=value`
filesystem option or a known filesystem flag is refused up front, so a typo
shows up as one line naming the option instead of an EINVAL from the kernel.
"""

import os

from ..errors import ConfigError
from ..sys import mount as m

# option -> (flag, set?): the flag is set, or cleared, in the mount(2) flags.
FLAG_OPTIONS = {
    "acl": (m.MS_POSIXACL, True), "noacl": (m.MS_POSIXACL, False),
    "async": (m.MS_SYNCHRONOUS, False), "sync": (m.MS_SYNCHRONOUS, True),
    "atime": (m.MS_NOATIME, False), "noatime": (m.MS_NOATIME, True),
    "bind": (m.MS_BIND, True), "rbind": (m.MS_BIND | m.MS_REC, True),
    "defaults": (0, True),
    "dev": (m.MS_NODEV, False), "nodev": (m.MS_NODEV, True),
    "diratime": (m.MS_NODIRATIME, False), "nodiratime": (m.MS_NODIRATIME, True),
    "dirsync": (m.MS_DIRSYNC, True),
    "exec": (m.MS_NOEXEC, False), "noexec": (m.MS_NOEXEC, True),
    "iversion": (m.MS_I_VERSION, True), "noiversion": (m.MS_I_VERSION, False),
    "lazytime": (m.MS_LAZYTIME, True), "nolazytime": (m.MS_LAZYTIME, False),
    "loud": (m.MS_SILENT, False), "silent": (m.MS_SILENT, True),
    "mand": (m.MS_MANDLOCK, True), "nomand": (m.MS_MANDLOCK, False),
    "relatime": (m.MS_RELATIME, True), "norelatime": (m.MS_RELATIME, False),
    "strictatime": (m.MS_STRICTATIME, True), "nostrictatime": (m.MS_STRICTATIME, False),
    "suid": (m.MS_NOSUID, False), "nosuid": (m.MS_NOSUID, True),
    "symfollow": (m.MS_NOSYMFOLLOW, False), "nosymfollow": (m.MS_NOSYMFOLLOW, True),
    "remount": (m.MS_REMOUNT, True),
    "ro": (m.MS_RDONLY, True), "rw": (m.MS_RDONLY, False),
}

PROPAGATION_OPTIONS = {
    "private": m.MS_PRIVATE, "rprivate": m.MS_PRIVATE | m.MS_REC,
    "shared": m.MS_SHARED, "rshared": m.MS_SHARED | m.MS_REC,
    "slave": m.MS_SLAVE, "rslave": m.MS_SLAVE | m.MS_REC,
    "unbindable": m.MS_UNBINDABLE, "runbindable": m.MS_UNBINDABLE | m.MS_REC,
}

# Recursive variants, applied to the whole mounted tree with mount_setattr(2):
# option -> (attr bits to set, attr bits to clear).
RECURSIVE_OPTIONS = {
    "rro": (m.MOUNT_ATTR_RDONLY, 0), "rrw": (0, m.MOUNT_ATTR_RDONLY),
    "rnosuid": (m.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, m.MOUNT_ATTR_NOSUID),
    "rnodev": (m.MOUNT_ATTR_NODEV, 0), "rdev": (0, m.MOUNT_ATTR_NODEV),
    "rnoexec": (m.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, m.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (m.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, m.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (m.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, m.MOUNT_ATTR_NOSYMFOLLOW),
    "rrelatime": (m.MOUNT_ATTR_RELATIME, m.MOUNT_ATTR__ATIME),
    "rnorelatime": (0, m.MOUNT_ATTR__ATIME),
    "rnoatime": (m.MOUNT_ATTR_NOATIME, m.MOUNT_ATTR__ATIME),
    "ratime": (0, m.MOUNT_ATTR_NOATIME),
    "rstrictatime": (m.MOUNT_ATTR_STRICTATIME, m.MOUNT_ATTR__ATIME),
    "rnostrictatime": (0, m.MOUNT_ATTR__ATIME),
}

# Filesystem options without a value that the kernel's filesystems take as data.
DATA_WORDS = {
    "newinstance", "nsdelegate", "memory_recursiveprot", "memory_localevents",
    "favordynmods", "noswap", "userxattr", "xattr", "noprefix", "cpuset_v2_mode",
    "inode64", "inode32", "nouser_xattr", "user_xattr", "usrquota", "grpquota",
    "quota", "noquota", "noxino", "index", "metacopy",
}

# Not mount flags at all: runc extensions that change how we mount.
EXTENSION_OPTIONS = {"tmpcopyup", "idmap", "ridmap"}


def known_options() -> list[str]:
    """Every option word we accept, for `ocirun features` (mountOptions)."""
    return sorted({*FLAG_OPTIONS, *PROPAGATION_OPTIONS, *RECURSIVE_OPTIONS, *EXTENSION_OPTIONS})


class MountOptions:
    # Plain classes rather than dataclasses throughout the runtime: the
    # dataclasses module pulls in inspect and ast, which every command and the
    # waiting container init would carry.
    __slots__ = ("attr_clr", "attr_set", "data", "explicit_rw", "extensions", "flags", "propagation")

    def __init__(self, flags: int = 0, data: list[str] | None = None, propagation: list[int] | None = None,
                 attr_set: int = 0, attr_clr: int = 0, extensions: set[str] | None = None,
                 explicit_rw: bool = False):
        self.flags = flags
        self.data = [] if data is None else data
        self.propagation = [] if propagation is None else propagation
        self.attr_set = attr_set
        self.attr_clr = attr_clr
        self.extensions = set() if extensions is None else extensions
        self.explicit_rw = explicit_rw

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & m.MS_BIND)

    @property
    def data_string(self) -> str | None:
        return ",".join(self.data) or None


def parse_options(options: list[str], where: str, fstype: str = "") -> MountOptions:
    """Parse one mount's options; `where` is the config field named in errors."""
    result = MountOptions()
    if options is None:
        return result
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ConfigError(where, "must be a list of strings")
    for option in options:
        if option in FLAG_OPTIONS:
            flag, on = FLAG_OPTIONS[option]
            if on:
                result.flags |= flag
            else:
                result.flags &= ~flag
            if option == "rw":
                result.explicit_rw = True
            elif option == "ro":
                result.explicit_rw = False
        elif option in PROPAGATION_OPTIONS:
            result.propagation.append(PROPAGATION_OPTIONS[option])
        elif option in RECURSIVE_OPTIONS:
            set_bits, clear_bits = RECURSIVE_OPTIONS[option]
            result.attr_clr = (result.attr_clr & ~set_bits) | clear_bits
            result.attr_set = (result.attr_set & ~clear_bits) | set_bits
        elif option in EXTENSION_OPTIONS:
            result.extensions.add(option)
        elif "=" in option and option.split("=", 1)[0]:
            result.data.append(option)
        elif option in DATA_WORDS or (fstype == "cgroup" and option.isidentifier()):
            result.data.append(option)
        else:
            raise ConfigError(where, f"unknown mount option {option!r}")
    if "tmpcopyup" in result.extensions and fstype != "tmpfs":
        raise ConfigError(where, "tmpcopyup is only valid for tmpfs mounts")
    return result


def is_bind(mount: dict) -> bool:
    options = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


def bind_source(mount: dict, bundle: str) -> str:
    """A bind source is relative to the bundle when it is not absolute, as the spec says."""
    source = mount.get("source") or ""
    return source if os.path.isabs(source) else os.path.join(bundle, source)


def validate(spec: dict, bundle: str) -> list[MountOptions]:
    """Check every mount before anything is started; the parsed options, in order."""
    parsed = []
    mounts = spec.get("mounts") or []
    if not isinstance(mounts, list):
        raise ConfigError("mounts", "must be a list")
    for i, mount in enumerate(mounts):
        if not isinstance(mount, dict):
            raise ConfigError(f"mounts[{i}]", "must be an object")
        destination = mount.get("destination")
        if not isinstance(destination, str) or not destination:
            raise ConfigError(f"mounts[{i}].destination", "is required")
        options = parse_options(mount.get("options"), f"mounts[{i}].options",
                                mount.get("type") or "")
        if is_bind(mount):
            options.flags |= m.MS_BIND
            source = mount.get("source")
            if not source:
                raise ConfigError(f"mounts[{i}].source", "a bind mount needs a source")
            if not os.path.lexists(bind_source(mount, bundle)):
                raise ConfigError(f"mounts[{i}].source",
                                  f"{source} does not exist; create it or fix the path")
        elif not mount.get("type"):
            raise ConfigError(f"mounts[{i}].type", "is required for a mount that is not a bind")
        if options.extensions & {"idmap", "ridmap"} and not is_bind(mount):
            raise ConfigError(f"mounts[{i}].options", "idmap is only supported on bind mounts")
        parsed.append(options)
    return parsed
