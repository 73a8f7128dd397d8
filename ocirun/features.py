"""`ocirun features`: the runtime-spec features document (features.md).

Every list is read from the module that implements it, so the document
cannot claim more than the code does, and grows when the code does.
"""

import os

from . import OCI_VERSION


# Every architecture name the spec lists; those libseccomp knows are reported.
SECCOMP_ARCHES = ["x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32",
                  "mipsel", "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390",
                  "s390x", "parisc", "parisc64", "riscv64", "loongarch64"]


def features_document() -> dict:
    from .cgroups import detect
    from .container import capabilities, mounts, process, seccomp
    from .hooks import PHASES
    from .sys import ns as sysns
    from .sys import seccomp as libseccomp

    mount_options = sorted(mounts.known_options())
    try:
        cgroup_layout = detect()
    except Exception:  # noqa: BLE001 - a host without cgroups still gets a document
        cgroup_layout = "none"
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(PHASES),
        "mountOptions": mount_options,
        "linux": {
            "namespaces": list(sysns.NAMESPACES),
            "capabilities": sorted(capabilities.CAPABILITIES),
            "cgroup": {"v1": cgroup_layout in ("v1", "hybrid"), "v2": cgroup_layout == "v2",
                       "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": seccomp.ACTION_NAMES,
                "operators": sorted(libseccomp.CMP_OPS),
                "archs": [f"SCMP_ARCH_{a.upper()}" for a in SECCOMP_ARCHES if libseccomp.arch_token(a)],
                "knownFlags": sorted(seccomp.FLAGS),
                "supportedFlags": sorted(seccomp.FLAGS),
            },
            "apparmor": {"enabled": process.apparmor_enabled()},
            "selinux": {"enabled": process.selinux_enabled()},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": os.path.exists("/proc/self/ns/user")}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.ocirun.version": _version()},
    }


def _version() -> str:
    from . import __version__
    return __version__
