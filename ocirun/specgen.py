"""The default config.json that `ocirun spec` writes and bundle-from-hub builds on.

It matches what runc's `spec` produces in substance (namespaces, the standard
mounts, masked and read-only paths, a small capability set), so bundles made
for either runtime behave the same.
"""

import copy

from . import OCI_VERSION

DEFAULT_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi",
]
READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]

_BASE = {
    "ociVersion": OCI_VERSION,
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [DEFAULT_PATH, "TERM=xterm"],
        "cwd": "/",
        "capabilities": {kind: DEFAULT_CAPABILITIES for kind in
                         ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "ocirun",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    },
}


def default_spec(rootless: bool = False) -> dict:
    """A fresh default config; `rootless` maps the caller's ids into a user namespace."""
    spec = copy.deepcopy(_BASE)
    if rootless:
        import os
        linux = spec["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
        linux.pop("resources")
        # Without a user namespace owning the network, sysfs cannot be mounted:
        # bind the host's read-only instead, as runc's rootless spec does.
        spec["mounts"] = [m for m in spec["mounts"]
                          if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        spec["mounts"].append({"destination": "/sys", "type": "none", "source": "/sys",
                               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        for mount in spec["mounts"]:
            if mount["type"] == "devpts":
                mount["options"] = [o for o in mount["options"] if o != "gid=5"]
    return spec
