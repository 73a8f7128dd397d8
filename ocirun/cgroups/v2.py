"""cgroup v2: one tree; the spec's v1-shaped values are converted as runc does."""

import os
import time

from ..errors import OciError
from . import devices
from .base import CgroupManager, OomWatch, check_memory_before_update, resource_error
from .v1 import rdma_line

_FREEZE_POLLS = 1000


def cpu_weight(shares: int) -> int:
    """cpu.shares (2-262144) to cpu.weight (1-10000), linearly like runc 1.1."""
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(weight: int) -> int:
    """blkio.weight (10-1000) to io.weight (1-10000)."""
    return 1 + ((weight - 10) * 9999) // 990


def swap_max(limit, swap, source: str) -> str | None:
    """v1's memory+swap total to v2's swap-only memory.swap.max (None: leave alone)."""
    if not swap:
        return None
    if swap == -1:
        return "max"
    if not limit or limit == -1:
        raise resource_error(source, "linux.resources.memory.swap",
                             "cannot limit swap without a memory limit on cgroup v2")
    if swap < limit:
        raise resource_error(source, "linux.resources.memory.swap", f"{swap} is below the memory "
                             f"limit ({limit}): swap is the memory+swap total")
    return str(swap - limit)


class V2Manager(CgroupManager):
    version = "v2"

    @property
    def dir(self) -> str:
        return self.paths[""][1]

    def _f(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _before_mkdir(self, parent: str) -> None:
        # A child only gets the controllers its parent delegates to it.
        available = self._read(os.path.join(parent, "cgroup.controllers"), "").split()
        enabled = self._read(os.path.join(parent, "cgroup.subtree_control"), "").split()
        for controller in available:
            if controller not in enabled:
                try:
                    self.fs.write(os.path.join(parent, "cgroup.subtree_control"), f"+{controller}")
                except OSError:
                    # e.g. a threaded subtree or processes in parent: set() will
                    # name the field if a limit needs the missing controller.
                    pass

    def _pids_dir(self) -> str:
        return self.dir

    # --- resources ------------------------------------------------------------
    def set(self, resources: dict, *, linux_devices: list | None = None,
            source: str = "config.json") -> None:
        r = resources or {}
        if r.get("memory"):
            self._set_memory(r["memory"], source)
        if r.get("cpu"):
            self._set_cpu(r["cpu"], source)
        limit = (r.get("pids") or {}).get("limit")
        if limit:
            self._write(source, "linux.resources.pids.limit", self._f("pids.max"),
                        limit if limit > 0 else "max")
        if r.get("blockIO"):
            self._set_io(r["blockIO"], source)
        for i, hp in enumerate(r.get("hugepageLimits") or []):
            field = f"linux.resources.hugepageLimits[{i}]"
            self._write(source, field, self._f(f"hugetlb.{hp['pageSize']}.max"), hp["limit"])
            # Reservations count too (kernel 5.7+): limit them alike or they escape the limit.
            if self.fs.exists(self._f(f"hugetlb.{hp['pageSize']}.rsvd.max")):
                self._write(source, field, self._f(f"hugetlb.{hp['pageSize']}.rsvd.max"), hp["limit"])
        network = r.get("network") or {}
        if network.get("classID") is not None or network.get("priorities"):
            raise resource_error(source, "linux.resources.network",
                                 "net_cls and net_prio do not exist on cgroup v2; remove it")
        for device, limits in (r.get("rdma") or {}).items():
            self._write(source, f"linux.resources.rdma.{device}", self._f("rdma.max"),
                        rdma_line(device, limits))
        if "devices" in r or linux_devices is not None:
            self._set_devices(devices.rules_for(r.get("devices"), linux_devices), source)
        for key, value in (r.get("unified") or {}).items():
            field = f"linux.resources.unified.{key}"
            if "/" in key or key.startswith(".") or "." not in key:
                raise resource_error(source, field, "is not a cgroup interface file name")
            if not self.fs.exists(self._f(key)):
                raise resource_error(source, field, f"{self._f(key)} does not exist: the "
                                     f"{key.split('.')[0]} controller is not enabled for this cgroup")
            self._write(source, field, self._f(key), value)

    def _set_memory(self, m: dict, source: str) -> None:
        field = "linux.resources.memory"
        check_memory_before_update(source, m, self._read_int(self._f("memory.current")))
        # swappiness, disableOOMKiller, kernel and useHierarchy have no v2 file: skipped, as by runc.
        limit = m.get("limit")
        swap = swap_max(limit, m.get("swap"), source)
        busy = " (the container already uses more memory than that)"
        if swap is not None:
            self._write(source, f"{field}.swap", self._f("memory.swap.max"), swap)
        if limit:
            self._write(source, f"{field}.limit", self._f("memory.max"),
                        "max" if limit == -1 else limit, busy)
        if m.get("reservation"):
            self._write(source, f"{field}.reservation", self._f("memory.low"),
                        "max" if m["reservation"] == -1 else m["reservation"])

    def _set_cpu(self, c: dict, source: str) -> None:
        field = "linux.resources.cpu"
        if c.get("realtimeRuntime") or c.get("realtimePeriod"):
            raise resource_error(source, f"{field}.realtimeRuntime",
                                 "real-time CPU limits do not exist on cgroup v2; remove them")
        if c.get("shares"):
            if not 2 <= c["shares"] <= 262144:
                raise resource_error(source, f"{field}.shares", f"{c['shares']} is outside 2-262144")
            self._write(source, f"{field}.shares", self._f("cpu.weight"), cpu_weight(c["shares"]))
        quota, period = c.get("quota"), c.get("period")
        if quota or period:
            value = str(quota) if quota and quota > 0 else "max"
            if period:
                value += f" {period}"
            self._write(source, f"{field}.quota", self._f("cpu.max"), value,
                        " (the quota must be at least 1000 microseconds and the period "
                        "1000-1000000)")
        if c.get("burst") is not None:
            self._write(source, f"{field}.burst", self._f("cpu.max.burst"), c["burst"])
        if c.get("idle") is not None:
            self._write(source, f"{field}.idle", self._f("cpu.idle"), c["idle"])
        for key in ("cpus", "mems"):
            if c.get(key):
                host = self._read(os.path.join(self.paths[""][0], f"cpuset.{key}.effective"), "?")
                self._write(source, f"{field}.{key}", self._f(f"cpuset.{key}"), c[key],
                            f" (this host has {'CPUs' if key == 'cpus' else 'memory nodes'} {host})")

    def _set_io(self, b: dict, source: str) -> None:
        field = "linux.resources.blockIO"
        bfq = self.fs.exists(self._f("io.bfq.weight"))
        if b.get("weight"):
            if bfq:
                self._write(source, f"{field}.weight", self._f("io.bfq.weight"), b["weight"])
            else:
                self._write(source, f"{field}.weight", self._f("io.weight"), io_weight(b["weight"]))
        for i, wd in enumerate(b.get("weightDevice") or []):
            if wd.get("weight"):
                dev = f"{wd['major']}:{wd['minor']}"
                if bfq:
                    self._write(source, f"{field}.weightDevice[{i}]", self._f("io.bfq.weight"),
                                f"{dev} {wd['weight']}")
                else:
                    self._write(source, f"{field}.weightDevice[{i}]", self._f("io.weight"),
                                f"{dev} {io_weight(wd['weight'])}")
        for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for i, td in enumerate(b.get(key) or []):
                self._write(source, f"{field}.{key}[{i}]", self._f("io.max"),
                            f"{td['major']}:{td['minor']} {name}={td['rate']}")

    def _set_devices(self, rules: list[tuple], source: str) -> None:
        code = devices.encode(devices.bpf_program(rules))
        try:
            self.fs.set_device_program(self.dir, code)
        except OSError as e:
            raise resource_error(source, "linux.resources.devices",
                                 f"cannot install the device filter (BPF) on {self.dir}: "
                                 f"{e.strerror}") from None

    # --- freezer --------------------------------------------------------------
    def freeze(self) -> None:
        self._write("freeze", "cgroup.freeze", self._f("cgroup.freeze"), 1)
        for _ in range(_FREEZE_POLLS):
            if self._read_kv(self._f("cgroup.events")).get("frozen") == 1:
                return
            time.sleep(0.005)
        self.fs.write(self._f("cgroup.freeze"), "0")
        raise OciError(f"cgroup {self.dir} did not freeze; left it thawed")

    def thaw(self) -> None:
        self._write("thaw", "cgroup.freeze", self._f("cgroup.freeze"), 0)

    def is_frozen(self) -> bool:
        return self._read(self._f("cgroup.freeze"), "0") == "1"

    # --- accounting -----------------------------------------------------------
    def oom_count(self) -> int:
        return self._read_kv(self._f("memory.events")).get("oom_kill", 0)

    def oom_watch(self) -> OomWatch:
        path = self._f("memory.events")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OciError(f"{path} is missing: the memory controller is not enabled for "
                           "this container") from None
        return OomWatch(self.fs, fd, self.dir, path)

    def stats(self) -> dict:
        cpu = self._read_kv(self._f("cpu.stat"))
        limit = self._read(self._f("pids.max"), "max")
        raw = self._read_kv(self._f("memory.stat"))
        usage = self._read_int(self._f("memory.current"))
        swap = self._read_int(self._f("memory.swap.current"))
        events = self._read_kv(self._f("memory.events"))
        io = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
        for line in self._read(self._f("io.stat"), "").splitlines():
            dev, *pairs = line.split()
            major, minor = (int(x) for x in dev.split(":"))
            values = dict(p.split("=", 1) for p in pairs)
            for key, op, name in (("ioServiceBytesRecursive", "Read", "rbytes"),
                                  ("ioServiceBytesRecursive", "Write", "wbytes"),
                                  ("ioServicedRecursive", "Read", "rios"),
                                  ("ioServicedRecursive", "Write", "wios")):
                io[key].append({"major": major, "minor": minor, "op": op, "value": int(values.get(name, 0))})
        hugetlb = {}
        for name in self.fs.listdir(self.dir):
            if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
                size = name.split(".")[1]
                hugetlb[size] = {"usage": self._read_int(self._f(name)),
                                 "max": self._read_int(self._f(f"hugetlb.{size}.max")),
                                 "failcnt": self._read_kv(self._f(f"hugetlb.{size}.events")).get("max", 0)}
        return {
            "cpu": {"usage": {"total": cpu.get("usage_usec", 0) * 1000,
                              "kernel": cpu.get("system_usec", 0) * 1000,
                              "user": cpu.get("user_usec", 0) * 1000},
                    "throttling": {"periods": cpu.get("nr_periods", 0),
                                   "throttledPeriods": cpu.get("nr_throttled", 0),
                                   "throttledTime": cpu.get("throttled_usec", 0) * 1000}},
            "memory": {"cache": raw.get("file", 0),
                       "usage": {"limit": self._read_int(self._f("memory.max")), "usage": usage,
                                 "max": self._read_int(self._f("memory.peak")),
                                 "failcnt": events.get("max", 0)},
                       # v1 reported memory+swap; keep that meaning for consumers.
                       "swap": {"limit": self._read_int(self._f("memory.swap.max")),
                                "usage": usage + swap, "failcnt": 0},
                       "raw": raw},
            "pids": {"current": self._read_int(self._f("pids.current")),
                     "limit": 0 if limit == "max" else int(limit)},
            "blkio": {k: v for k, v in io.items() if v},
            "hugetlb": hugetlb,
        }
