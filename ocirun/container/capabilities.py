"""process.capabilities: capability names to masks, and applying them in the order the kernel needs.

Unknown names, and names the running kernel does not have, are warned about and
skipped rather than refused, as runc does: engines pass one capability list to
every kernel.
"""

from ..errors import ConfigError
from ..log import logger

# Capability numbers from linux/capability.h; CAP_CHECKPOINT_RESTORE (40) is the last in 6.x.
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAPABILITY_NAMES = {number: name for name, number in CAPABILITIES.items()}

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


class CapabilityMasks:
    """One bit per capability number for each of the five sets."""

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "last_cap", "permitted")

    def __init__(self, bounding: int, effective: int, permitted: int, inheritable: int, ambient: int,
                 last_cap: int):
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient
        self.last_cap = last_cap

    def all_known(self) -> int:
        return (1 << (self.last_cap + 1)) - 1


def mask_of(names: list[str], field: str, last_cap: int) -> int:
    mask = 0
    skipped = []
    for name in names:
        number = CAPABILITIES.get(name)
        if number is None or number > last_cap:
            skipped.append(name)
            continue
        mask |= 1 << number
    if skipped:
        logger.warning(f"{field}: ignoring unknown or unavailable capabilities {skipped}")
    return mask


def parse(capabilities: dict | None, last_cap: int) -> CapabilityMasks | None:
    """None when process.capabilities is absent: the process keeps what it has, as with runc."""
    if capabilities is None:
        return None
    masks = {s: mask_of(capabilities.get(s) or [], f"process.capabilities.{s}", last_cap) for s in SETS}
    beyond = masks["effective"] & ~masks["permitted"]
    if beyond:
        names = [CAPABILITY_NAMES[n] for n in range(last_cap + 1) if beyond >> n & 1]
        raise ConfigError("process.capabilities.effective",
                          f"{names} not in process.capabilities.permitted; the kernel only allows "
                          "effective capabilities that are also permitted: add them there")
    # The kernel refuses to raise an ambient capability that is not both
    # permitted and inheritable; runc skips those with a warning too.
    unraisable = masks["ambient"] & ~(masks["permitted"] & masks["inheritable"])
    if unraisable:
        names = [CAPABILITY_NAMES[n] for n in range(last_cap + 1) if unraisable >> n & 1]
        logger.warning(f"process.capabilities.ambient: ignoring {names}: an ambient capability "
                       "must also be permitted and inheritable")
        masks["ambient"] &= ~unraisable
    return CapabilityMasks(last_cap=last_cap, **masks)


def drop_bounding(masks: CapabilityMasks, sys) -> None:
    """Drop from the bounding set what the config leaves out; needs CAP_SETPCAP, so it comes first."""
    for number in range(masks.last_cap + 1):
        if not masks.bounding >> number & 1 and sys.bounding_has(number):
            sys.bounding_drop(number)


def apply_sets(masks: CapabilityMasks, sys) -> None:
    """Set effective/permitted/inheritable, then the ambient set (which the kernel derives from them)."""
    sys.capset(masks.effective, masks.permitted, masks.inheritable)
    sys.ambient_clear()
    for number in range(masks.last_cap + 1):
        if masks.ambient >> number & 1:
            sys.ambient_raise(number)
