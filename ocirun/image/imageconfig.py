"""Image config -> runtime config.json, by the image spec's conversion rules.

The result starts from `ocirun.specgen.default_spec()` (what `ocirun spec`
writes) and overlays what the image says: the command, environment, working
directory, user, annotations and volumes.
"""

import os
import stat

from ..errors import OciError
from ..specgen import DEFAULT_PATH, default_spec

# Resolved inside the container these are kernel-provided and can point
# anywhere on the host (the /proc/self/fd/N working-directory escape).
_RUNTIME_FILESYSTEMS = ("proc", "sys")
_MAX_LINKS = 40


def resolve_in_root(rootfs: str, path: str) -> str:
    """The path `path` means inside the container, symlinks followed within `rootfs`.

    Returns the container-absolute path (`/usr/lib/...`); parts that do not
    exist yet are kept as written. `..` and absolute symlinks stop at the root.
    """
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        host = os.path.join(rootfs, *done, part)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise OciError(f"{path}: too many levels of symbolic links in the image")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return "/" + "/".join(done)


def _read_in_root(rootfs: str, path: str) -> str | None:
    resolved = resolve_in_root(rootfs, path)
    host = os.path.join(rootfs, resolved.lstrip("/"))
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "r", errors="replace", closefd=False) as f:
            return f.read(8 << 20)
    finally:
        os.close(fd)


def _table(text: str | None) -> list[list[str]]:
    rows = []
    for line in (text or "").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(rootfs: str, user: str) -> dict:
    """`user[:group]` (names or numbers) -> {"uid", "gid", "additionalGids"?}.

    Names are looked up in the image's /etc/passwd and /etc/group; an unknown
    name is an error because running as the wrong user is worse than not running.
    """
    if not user:
        return {"uid": 0, "gid": 0}
    name, _, group = user.partition(":")
    passwd = _table(_read_in_root(rootfs, "/etc/passwd"))
    groups = _table(_read_in_root(rootfs, "/etc/group"))
    entry = None
    for row in passwd:
        if len(row) >= 4 and (row[0] == name or (name.isdigit() and row[2] == name)):
            entry = row
            break
    if name.isdigit():
        uid = int(name)
        gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    elif entry is None:
        raise OciError(f"image config: User {user!r}: no user {name!r} in the image's /etc/passwd; "
                       "fix the image or pass a numeric uid")
    else:
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = [row for row in groups if len(row) >= 3 and row[0] == group]
            if not match:
                raise OciError(f"image config: User {user!r}: no group {group!r} in the image's "
                               "/etc/group; fix the image or pass a numeric gid")
            gid = int(match[0][2])
    result = {"uid": uid, "gid": gid}
    if entry is not None:
        username = entry[0]
        extra = sorted({int(row[2]) for row in groups
                        if len(row) >= 4 and row[2].isdigit() and username in row[3].split(",")} - {gid})
        if extra:
            result["additionalGids"] = extra
    return result


def _check_cwd(rootfs: str, cwd: str) -> str:
    if not cwd.startswith("/"):
        raise OciError(f"image config: WorkingDir {cwd!r} is not absolute; fix the image")
    resolved = resolve_in_root(rootfs, cwd)
    top = resolved.strip("/").split("/", 1)[0]
    if top in _RUNTIME_FILESYSTEMS:
        raise OciError(f"image config: WorkingDir {cwd!r} resolves to {resolved}, which the runtime "
                       "mounts from the kernel and could point outside the container; refusing it")
    return cwd


def _annotations(image: dict, platform: dict) -> dict:
    config = image.get("config") or {}
    out = {}
    for key, source in (("os", "os"), ("architecture", "architecture"), ("variant", "variant"),
                        ("os.version", "os.version"), ("author", "author"), ("created", "created")):
        value = image.get(source) or platform.get(source)
        if value:
            out[f"org.opencontainers.image.{key}"] = str(value)
    features = image.get("os.features") or platform.get("os.features")
    if features:
        out["org.opencontainers.image.os.features"] = ",".join(features)
    if config.get("StopSignal"):
        out["org.opencontainers.image.stopSignal"] = config["StopSignal"]
    if config.get("ExposedPorts"):
        out["org.opencontainers.image.exposedPorts"] = ",".join(sorted(config["ExposedPorts"]))
    # Labels win over anything derived above, as the conversion rules say.
    for key, value in (config.get("Labels") or {}).items():
        out[str(key)] = str(value)
    return out


def runtime_config(image: dict, rootfs: str, command: list[str] | None = None,
                   tty: bool = False, platform: dict | None = None) -> dict:
    """The config.json for `image` (the parsed image config JSON) unpacked at `rootfs`.

    `command` replaces the image's Cmd (the Entrypoint stays), like the
    arguments after the image in `docker run`.
    """
    config = image.get("config") or {}
    spec = default_spec()
    process = spec["process"]
    entrypoint = list(config.get("Entrypoint") or [])
    cmd = list(command) if command else list(config.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise OciError("the image has neither Entrypoint nor Cmd; give a command after `--`")
    process["args"] = args
    env = [e for e in config.get("Env") or [] if "=" in e]
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    if tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    process["env"] = env
    process["cwd"] = _check_cwd(rootfs, config.get("WorkingDir") or "/")
    process["user"] = resolve_user(rootfs, config.get("User") or "")
    process["terminal"] = bool(tty)
    # Images expect to write where they like (/tmp, /var/run...), as under docker.
    spec["root"] = {"path": "rootfs", "readonly": False}
    annotations = _annotations(image, platform or {})
    if annotations:
        spec["annotations"] = annotations
    taken = {m["destination"] for m in spec["mounts"]}
    for volume in sorted(config.get("Volumes") or {}):
        if not volume.startswith("/"):
            raise OciError(f"image config: Volume {volume!r} is not absolute; fix the image")
        if volume in taken:
            continue
        # tmpcopyup: like docker's anonymous volumes, the tmpfs starts out with
        # what the image has at that path.
        spec["mounts"].append({"destination": volume, "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=755", "tmpcopyup"]})
    return spec
