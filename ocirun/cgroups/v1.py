"""cgroup v1: one hierarchy per controller (or per group of co-mounted ones).

On a hybrid host the container is also placed in the v2 tree (under the same
path) so that a cgroup namespace hides the host's v2 paths too; its limits all
go through the v1 controllers.
"""

import errno
import os
import time
from functools import partial

from . import devices
from .base import CgroupManager, OomWatch, check_memory_before_update, resource_error

CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "pids", "blkio",
               "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc")
UNIFIED = ""  # key of the hybrid v2 tree in paths
NAMED_SYSTEMD = "name=systemd"

_FREEZE_ATTEMPTS = 1000
_NANOS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def hierarchies(root: str, fs) -> dict[str, str]:
    """controller -> mount point, found by looking at what is mounted under root."""
    found = {}
    for name in sorted(fs.listdir(root)):
        path = os.path.join(root, name)
        # Distributions add "cpu" -> "cpu,cpuacct" symlinks: the real directory covers them.
        if os.path.islink(path) or not fs.exists(os.path.join(path, "cgroup.procs")):
            continue
        if name == "unified":
            found[UNIFIED] = path
            continue
        if name == "systemd":
            # systemd's named hierarchy: runc moves containers there too, and
            # a cgroup namespace then hides the host's path in it.
            found[NAMED_SYSTEMD] = path
            continue
        for controller in name.split(","):
            if controller in CONTROLLERS:
                found[controller] = path
    return found


class V1Manager(CgroupManager):
    version = "v1"

    def _dir(self, controller: str, source: str = "", field: str = "") -> str | None:
        entry = self.paths.get(controller)
        if entry is None:
            if field:
                raise resource_error(source, field, f"the {controller} cgroup controller is not "
                                     "available on this host")
            return None
        return entry[1]

    def _after_mkdir(self, path: str, parent: str) -> None:
        cpuset = self.paths.get("cpuset")
        if cpuset and (cpuset[1] == path or cpuset[1].startswith(path + os.sep)):
            self._inherit_cpuset(path, cpuset[0])

    def _inherit_cpuset(self, path: str, mount: str) -> None:
        """A new cpuset cgroup starts with no CPUs and no memory nodes, and
        refuses processes until it gets some: copy the parent's, fixing up
        first a parent that a concurrent runtime has just made and not yet filled."""
        if path == mount:
            return
        parent = os.path.dirname(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not self._read(os.path.join(path, name), ""):
                value = self._read(os.path.join(parent, name), "")
                if not value:
                    self._inherit_cpuset(parent, mount)
                    value = self._read(os.path.join(parent, name))
                self.fs.write(os.path.join(path, name), value)

    def _pids_dir(self) -> str:
        for controller in ("pids", "freezer", "memory", "cpu"):
            if controller in self.paths:
                return self.paths[controller][1]
        return next(iter(self.paths.values()))[1]

    # --- resources ------------------------------------------------------------
    def set(self, resources: dict, *, linux_devices: list | None = None,
            source: str = "config.json") -> None:
        r = resources or {}
        if r.get("unified"):
            raise resource_error(source, "linux.resources.unified",
                                 "needs cgroup v2, and this host uses cgroup v1")
        if r.get("memory"):
            self._set_memory(r["memory"], source)
        if r.get("cpu"):
            self._set_cpu(r["cpu"], source)
        if (r.get("pids") or {}).get("limit") is not None:
            limit = r["pids"]["limit"]
            if limit != 0:
                self._write(source, "linux.resources.pids.limit",
                            os.path.join(self._dir("pids", source, "linux.resources.pids.limit"), "pids.max"),
                            limit if limit > 0 else "max")
        if r.get("blockIO"):
            self._set_blkio(r["blockIO"], source)
        for i, hp in enumerate(r.get("hugepageLimits") or []):
            field = f"linux.resources.hugepageLimits[{i}]"
            path = self._dir("hugetlb", source, field)
            self._write(source, field, os.path.join(path, f"hugetlb.{hp['pageSize']}.limit_in_bytes"),
                        hp["limit"])
        network = r.get("network") or {}
        if network.get("classID") is not None:
            field = "linux.resources.network.classID"
            self._write(source, field, os.path.join(self._dir("net_cls", source, field),
                                                    "net_cls.classid"), network["classID"])
        for i, prio in enumerate(network.get("priorities") or []):
            field = f"linux.resources.network.priorities[{i}]"
            self._write(source, field, os.path.join(self._dir("net_prio", source, field),
                                                    "net_prio.ifpriomap"),
                        f"{prio['name']} {prio['priority']}")
        for device, limits in (r.get("rdma") or {}).items():
            field = f"linux.resources.rdma.{device}"
            self._write(source, field, os.path.join(self._dir("rdma", source, field), "rdma.max"),
                        rdma_line(device, limits))
        if "devices" in r or linux_devices is not None:
            rules = devices.rules_for(r.get("devices"), linux_devices)
            path = self._dir("devices", source, "linux.resources.devices")
            for name, line in devices.v1_lines(rules):
                self._write(source, "linux.resources.devices", os.path.join(path, name), line)

    def _set_memory(self, m: dict, source: str) -> None:
        field = "linux.resources.memory"
        if not any(v is not None for v in m.values()):
            return
        path = self._dir("memory", source, field)
        f = partial(os.path.join, path)
        check_memory_before_update(source, m, self._read_int(f("memory.usage_in_bytes")))
        limit, swap = m.get("limit"), m.get("swap")
        if limit == -1 and swap is None:
            swap = -1  # lifting the memory limit must lift memory+swap too
        if limit is not None and limit > 0 and swap is not None and 0 < swap < limit:
            raise resource_error(source, f"{field}.swap", f"{swap} is below the memory limit "
                                 f"({limit}): on cgroup v1 swap is the memory+swap total")
        busy = " (the container already uses more memory than that)"

        def write_limit():
            self._write(source, f"{field}.limit", f("memory.limit_in_bytes"), limit, busy)

        if swap is not None and swap != 0:
            if not self.fs.exists(f("memory.memsw.limit_in_bytes")):
                if swap != -1:
                    raise resource_error(source, f"{field}.swap", "swap accounting is disabled on "
                                         "this host (boot with swapaccount=1)")
            else:
                def write_swap():
                    self._write(source, f"{field}.swap", f("memory.memsw.limit_in_bytes"), swap, busy)

                # memory+swap may never be below memory: grow it first, shrink it last.
                if swap == -1 or swap > self._read_int(f("memory.limit_in_bytes")):
                    write_swap()
                    if limit is not None:
                        write_limit()
                else:
                    if limit is not None:
                        write_limit()
                    write_swap()
                limit = None
        if limit is not None:
            write_limit()
        if m.get("reservation") is not None:
            self._write(source, f"{field}.reservation", f("memory.soft_limit_in_bytes"), m["reservation"])
        # memory.kernel is left alone: kernels since 5.16 have no kmem limit, and runc skips it too.
        if m.get("kernelTCP") is not None:
            self._write(source, f"{field}.kernelTCP", f("memory.kmem.tcp.limit_in_bytes"), m["kernelTCP"])
        if m.get("swappiness") is not None:
            if not 0 <= m["swappiness"] <= 100:
                raise resource_error(source, f"{field}.swappiness",
                                     f"{m['swappiness']} is outside 0-100")
            self._write(source, f"{field}.swappiness", f("memory.swappiness"), m["swappiness"])
        if m.get("disableOOMKiller"):
            self._write(source, f"{field}.disableOOMKiller", f("memory.oom_control"), 1)
        if m.get("useHierarchy") is not None:
            wanted = "1" if m["useHierarchy"] else "0"
            if self._read(f("memory.use_hierarchy"), wanted) != wanted:
                self._write(source, f"{field}.useHierarchy", f("memory.use_hierarchy"), wanted)

    def _set_cpu(self, c: dict, source: str) -> None:
        field = "linux.resources.cpu"
        cpu_keys = ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "idle")
        if any(c.get(k) is not None for k in cpu_keys):
            path = self._dir("cpu", source, field)
            f = partial(os.path.join, path)
            if c.get("shares"):
                self._write(source, f"{field}.shares", f("cpu.shares"), c["shares"])
                actual = self._read_int(f("cpu.shares"))
                if actual != c["shares"]:
                    raise resource_error(source, f"{field}.shares", f"{c['shares']} is outside "
                                         f"the range the kernel accepts (it set {actual}; use 2-262144)")
            self._set_quota_period(c, source, f("cpu.cfs_quota_us"), f("cpu.cfs_period_us"))
            if c.get("burst") is not None:
                self._write(source, f"{field}.burst", f("cpu.cfs_burst_us"), c["burst"])
            if c.get("realtimePeriod"):
                self._write(source, f"{field}.realtimePeriod", f("cpu.rt_period_us"), c["realtimePeriod"])
            if c.get("realtimeRuntime"):
                self._write(source, f"{field}.realtimeRuntime", f("cpu.rt_runtime_us"),
                            c["realtimeRuntime"], " (it must fit in the parent cgroup's runtime)")
            if c.get("idle") is not None:
                self._write(source, f"{field}.idle", f("cpu.idle"), c["idle"])
        for key in ("cpus", "mems"):
            if c.get(key):
                path = self._dir("cpuset", source, f"{field}.{key}")
                host = self._read(os.path.join(self.paths["cpuset"][0], f"cpuset.effective_{key}"), "?")
                self._write(source, f"{field}.{key}", os.path.join(path, f"cpuset.{key}"), c[key],
                            f" (this host has {'CPUs' if key == 'cpus' else 'memory nodes'} {host})")

    def _set_quota_period(self, c: dict, source: str, quota_file: str, period_file: str) -> None:
        quota, period = c.get("quota"), c.get("period")
        hint = " (the quota must be at least 1000 microseconds, or -1 for no limit)"

        def write_quota():
            self._write(source, "linux.resources.cpu.quota", quota_file, quota, hint)

        if period:
            try:
                self.fs.write(period_file, str(period))
            except OSError as e:
                # The old quota may not fit the new period: set the quota first.
                if e.errno != errno.EINVAL or not quota:
                    self._write(source, "linux.resources.cpu.period", period_file, period)
                write_quota()
                self._write(source, "linux.resources.cpu.period", period_file, period,
                            " (the period must be 1000-1000000 microseconds)")
                return
        if quota:
            write_quota()

    def _set_blkio(self, b: dict, source: str) -> None:
        field = "linux.resources.blockIO"
        if not any(v for v in b.values()):
            return
        path = self._dir("blkio", source, field)
        f = partial(os.path.join, path)
        # With the BFQ scheduler the kernel only offers the blkio.bfq.* weight files.
        prefix = "blkio." if self.fs.exists(f("blkio.weight")) else "blkio.bfq."
        if b.get("weight"):
            self._write(source, f"{field}.weight", f(prefix + "weight"), b["weight"])
        if b.get("leafWeight"):
            self._write(source, f"{field}.leafWeight", f("blkio.leaf_weight"), b["leafWeight"])
        for i, wd in enumerate(b.get("weightDevice") or []):
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                self._write(source, f"{field}.weightDevice[{i}]", f(prefix + "weight_device"),
                            f"{dev} {wd['weight']}")
            if wd.get("leafWeight"):
                self._write(source, f"{field}.weightDevice[{i}]", f("blkio.leaf_weight_device"),
                            f"{dev} {wd['leafWeight']}")
        for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                          ("throttleWriteBpsDevice", "write_bps_device"),
                          ("throttleReadIOPSDevice", "read_iops_device"),
                          ("throttleWriteIOPSDevice", "write_iops_device")):
            for i, td in enumerate(b.get(key) or []):
                self._write(source, f"{field}.{key}[{i}]", f(f"blkio.throttle.{name}"),
                            f"{td['major']}:{td['minor']} {td['rate']}")

    # --- freezer --------------------------------------------------------------
    def freeze(self) -> None:
        path = self._dir("freezer", "freeze", "freezer")
        state = os.path.join(path, "freezer.state")
        for attempt in range(_FREEZE_ATTEMPTS):
            # Tasks forking while we freeze can leave the cgroup FREEZING: ask again.
            self.fs.write(state, "FROZEN")
            if self._read(state, "") == "FROZEN":
                return
            time.sleep(min(0.001 * (attempt + 1), 0.01))
        self.fs.write(state, "THAWED")
        raise resource_error("freeze", path, "processes kept the cgroup from freezing; left it thawed")

    def thaw(self) -> None:
        self.fs.write(os.path.join(self._dir("freezer", "thaw", "freezer"), "freezer.state"), "THAWED")

    def is_frozen(self) -> bool:
        path = self._dir("freezer")
        return bool(path) and self._read(os.path.join(path, "freezer.state"), "") == "FROZEN"

    # --- accounting -----------------------------------------------------------
    def oom_count(self) -> int:
        path = self._dir("memory")
        return self._read_kv(os.path.join(path, "memory.oom_control")).get("oom_kill", 0) if path else 0

    def oom_watch(self) -> OomWatch:
        path = self._dir("memory", "events", "memory")
        return OomWatch(self.fs, self.fs.oom_watch_v1(path), path)

    def stats(self) -> dict:
        out = {"cpu": self._cpu_stats(), "memory": self._memory_stats(), "pids": {}, "blkio": {},
               "hugetlb": {}}
        pids = self._dir("pids")
        if pids:
            limit = self._read(os.path.join(pids, "pids.max"), "max")
            out["pids"] = {"current": self._read_int(os.path.join(pids, "pids.current")),
                           "limit": 0 if limit == "max" else int(limit)}
        blkio = self._dir("blkio")
        if blkio:
            for key, suffix in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                                ("ioServicedRecursive", "io_serviced_recursive")):
                for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
                    entries = blkio_entries(self._read(os.path.join(blkio, prefix + suffix), ""))
                    if entries:
                        out["blkio"][key] = entries
                        break
        hugetlb = self._dir("hugetlb")
        if hugetlb:
            for name in self.fs.listdir(hugetlb):
                if name.startswith("hugetlb.") and name.endswith(".limit_in_bytes") and "rsvd" not in name:
                    size = name.split(".")[1]
                    prefix = os.path.join(hugetlb, f"hugetlb.{size}.")
                    out["hugetlb"][size] = {"usage": self._read_int(prefix + "usage_in_bytes"),
                                            "max": self._read_int(prefix + "max_usage_in_bytes"),
                                            "failcnt": self._read_int(prefix + "failcnt")}
        return out

    def _cpu_stats(self) -> dict:
        usage, throttling = {}, {}
        acct = self._dir("cpuacct")
        if acct:
            f = partial(os.path.join, acct)
            ticks = self._read_kv(f("cpuacct.stat"))
            usage = {"total": self._read_int(f("cpuacct.usage")),
                     "percpu": [int(v) for v in self._read(f("cpuacct.usage_percpu"), "").split()],
                     "kernel": ticks.get("system", 0) * _NANOS_PER_TICK,
                     "user": ticks.get("user", 0) * _NANOS_PER_TICK}
        cpu = self._dir("cpu")
        if cpu:
            stat = self._read_kv(os.path.join(cpu, "cpu.stat"))
            throttling = {"periods": stat.get("nr_periods", 0),
                          "throttledPeriods": stat.get("nr_throttled", 0),
                          "throttledTime": stat.get("throttled_time", 0)}
        return {"usage": usage, "throttling": throttling}

    def _memory_stats(self) -> dict:
        path = self._dir("memory")
        if not path:
            return {}

        def entry(prefix):
            base = os.path.join(path, prefix + ".")
            return {"limit": self._read_int(base + "limit_in_bytes"),
                    "usage": self._read_int(base + "usage_in_bytes"),
                    "max": self._read_int(base + "max_usage_in_bytes"),
                    "failcnt": self._read_int(base + "failcnt")}

        raw = self._read_kv(os.path.join(path, "memory.stat"))
        return {"cache": raw.get("cache", 0), "usage": entry("memory"), "swap": entry("memory.memsw"),
                "kernel": entry("memory.kmem"), "kernelTCP": entry("memory.kmem.tcp"), "raw": raw}


def rdma_line(device: str, limits: dict) -> str:
    parts = [device]
    if limits.get("hcaHandles") is not None:
        parts.append(f"hca_handle={limits['hcaHandles']}")
    if limits.get("hcaObjects") is not None:
        parts.append(f"hca_object={limits['hcaObjects']}")
    return " ".join(parts)


def blkio_entries(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return out
