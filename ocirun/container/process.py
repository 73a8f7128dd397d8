"""The process settings of config.json (or of `exec`'s process.json), applied in the init.

The lead's init calls, in this order:
  prepare()           before pivot_root: validate everything, build the seccomp filter,
                      connect the seccomp agent's socket (its path is on the host)
  apply_early()       after the rootfs is final, still as root: rlimits, OOM score,
                      I/O priority, scheduler, personality, LSM labels, umask, cwd
  switch_user()       groups/gid/uid, capabilities, cwd, no_new_privs
  resolve_executable()
  close_fds()         nothing of the runtime may reach the container
  load_seccomp()      last, right before execve
make_non_dumpable() is for any runtime process that enters the container's namespaces.

Everything used after pivot_root is imported at the top: the host's Python
library is out of reach from then on.
"""

import errno
import os
import stat

from ..errors import ConfigError, ExecutableNotFound, OciError, PermissionDeniedExec
from ..sys import caps as syscaps
from ..sys import mount as sysmount
from ..sys import proc as sysproc
from . import capabilities as capability_sets
from . import safepath
from . import seccomp as seccomp_config

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
IO_PRIORITY_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
CAP_SYS_RESOURCE = capability_sets.CAPABILITIES["CAP_SYS_RESOURCE"]
DEFAULT_UMASK = 0o022

# Descriptors the runtime itself still needs between close_fds() and execve
# (the seccomp agent's socket); load_seccomp() closes them.
_fds_needed_until_exec: set[int] = set()


class Scheduler:
    __slots__ = ("deadline", "flags", "nice", "period", "policy", "priority", "runtime")

    def __init__(self, policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int,
                 period: int):
        self.policy = policy
        self.flags = flags
        self.nice = nice
        self.priority = priority
        self.runtime = runtime
        self.deadline = deadline
        self.period = period


class ProcessPlan:
    __slots__ = ("additional_gids", "apparmor_profile", "args", "capabilities", "cwd", "cwd_fd", "env",
                 "gid", "io_priority", "no_new_privileges", "oom_score_adj", "personality", "preserve_fds",
                 "rlimits", "scheduler", "seccomp", "seccomp_filter", "seccomp_listener", "seccomp_loaded",
                 "selinux_label", "uid", "umask")

    def __init__(self, args: list[str], env: dict[str, str], cwd: str, uid: int = 0, gid: int = 0,
                 additional_gids: list[int] | None = None, umask: int = DEFAULT_UMASK,
                 rlimits: list[tuple[int, int, int]] | None = None,
                 capabilities: capability_sets.CapabilityMasks | None = None, no_new_privileges: bool = False,
                 oom_score_adj: int | None = None, io_priority: tuple[int, int] | None = None,
                 scheduler: Scheduler | None = None, personality: int | None = None, apparmor_profile: str = "",
                 selinux_label: str = "", preserve_fds: int = 0, seccomp: seccomp_config.Program | None = None,
                 seccomp_filter: object = None, seccomp_listener: object = None, seccomp_loaded: bool = False,
                 cwd_fd: int = -1):
        self.args = args
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.additional_gids = [] if additional_gids is None else additional_gids
        self.umask = umask
        self.rlimits = [] if rlimits is None else rlimits
        self.capabilities = capabilities
        self.no_new_privileges = no_new_privileges
        self.oom_score_adj = oom_score_adj
        self.io_priority = io_priority
        self.scheduler = scheduler
        self.personality = personality
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label
        self.preserve_fds = preserve_fds
        self.seccomp = seccomp
        self.seccomp_filter = seccomp_filter  # sys.seccomp.Filter
        self.seccomp_listener = seccomp_listener  # socket.socket connected to listenerPath
        self.seccomp_loaded = seccomp_loaded
        self.cwd_fd = cwd_fd  # O_PATH fd of cwd, opened inside the root by apply_early


class Syscalls:
    """The state-changing calls made here, as methods tests can replace by a recorder."""

    setrlimit = staticmethod(sysproc.setrlimit)
    ioprio_set = staticmethod(sysproc.ioprio_set)
    sched_setattr = staticmethod(sysproc.sched_setattr)
    personality = staticmethod(sysproc.personality)
    umask = staticmethod(os.umask)
    setgroups = staticmethod(os.setgroups)
    setresgid = staticmethod(os.setresgid)
    setresuid = staticmethod(os.setresuid)
    set_keepcaps = staticmethod(syscaps.set_keepcaps)
    bounding_has = staticmethod(syscaps.bounding_has)
    bounding_drop = staticmethod(syscaps.bounding_drop)
    capset = staticmethod(syscaps.capset)
    ambient_clear = staticmethod(syscaps.ambient_clear)
    ambient_raise = staticmethod(syscaps.ambient_raise)
    set_no_new_privs = staticmethod(syscaps.set_no_new_privs)
    fchdir = staticmethod(os.fchdir)
    getcwd = staticmethod(os.getcwd)

    @staticmethod
    def write_proc(path: str, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    @staticmethod
    def read_text(path: str) -> str:
        with open(path) as f:
            return f.read()


SYSTEM = Syscalls()


def make_non_dumpable() -> None:
    """Keep processes inside the container from ptracing us or opening /proc/PID/exe and
    /proc/PID/fd of the runtime (the CVE-2019-5736 class); execve resets it for the container."""
    syscaps.set_dumpable(False)


# ---------------------------------------------------------------- prepare

def _int_field(value, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(where, f"{value!r} must be an integer from {low} to {high}")
    return value


def _parse_env(env: list, where: str = "process.env") -> dict[str, str]:
    result: dict[str, str] = {}
    for i, entry in enumerate(env or []):
        if not isinstance(entry, str) or "=" not in entry or entry.startswith("="):
            raise ConfigError(f"{where}[{i}]", f"{entry!r} is not of the form NAME=value")
        if "\0" in entry:
            raise ConfigError(f"{where}[{i}]", "contains a NUL byte")
        name, value = entry.split("=", 1)
        result[name] = value  # a later duplicate wins, as with runc
    return result


def _can_raise_hard_limits(sys) -> bool:
    """Raising a hard rlimit needs CAP_SYS_RESOURCE in the initial user namespace."""
    try:
        in_initial_userns = sys.read_text("/proc/self/uid_map").split() == ["0", "0", "4294967295"]
    except OSError:
        return False
    effective, _, _ = syscaps.capget()
    return in_initial_userns and bool(effective >> CAP_SYS_RESOURCE & 1)


def _parse_rlimits(rlimits: list, sys) -> list[tuple[int, int, int]]:
    result = []
    seen = set()
    may_raise = None
    for i, entry in enumerate(rlimits or []):
        where = f"process.rlimits[{i}]"
        name = entry.get("type")
        if name not in RLIMITS:
            raise ConfigError(f"{where}.type", f"unknown rlimit {name!r}; use one of {', '.join(RLIMITS)}")
        if name in seen:
            raise ConfigError(f"{where}.type", f"{name} is set twice; keep one entry")
        seen.add(name)
        hard = _int_field(entry.get("hard"), f"{where}.hard", 0, sysproc.RLIM_INFINITY)
        soft = _int_field(entry.get("soft"), f"{where}.soft", 0, sysproc.RLIM_INFINITY)
        if soft > hard:
            raise ConfigError(where, f"soft limit {soft} is above hard limit {hard}")
        _, current_hard = sysproc.getrlimit(RLIMITS[name])
        if hard > current_hard:
            if may_raise is None:
                may_raise = _can_raise_hard_limits(sys)
            if not may_raise:
                raise ConfigError(where, f"{name} hard limit {hard} is above the current hard limit "
                                  f"{current_hard}, and raising it needs CAP_SYS_RESOURCE, which this "
                                  f"runtime does not have: lower soft and hard to at most {current_hard}")
        result.append((RLIMITS[name], soft, hard))
    return result


def _parse_scheduler(config: dict) -> Scheduler:
    where = "process.scheduler"
    policy = SCHED_POLICIES.get(config.get("policy"))
    if policy is None:
        raise ConfigError(f"{where}.policy", f"unknown policy {config.get('policy')!r}; use one of "
                          f"{', '.join(SCHED_POLICIES)}")
    flags = 0
    for i, name in enumerate(config.get("flags") or []):
        if name not in SCHED_FLAGS:
            raise ConfigError(f"{where}.flags[{i}]", f"unknown flag {name!r}; use one of {', '.join(SCHED_FLAGS)}")
        flags |= SCHED_FLAGS[name]
    realtime = config["policy"] in ("SCHED_FIFO", "SCHED_RR")
    priority = _int_field(config.get("priority", 0), f"{where}.priority", 1 if realtime else 0, 99 if realtime else 0)
    nice = _int_field(config.get("nice", 0), f"{where}.nice", -20, 19)
    u64 = (1 << 64) - 1
    return Scheduler(policy, flags, nice, priority,
                     _int_field(config.get("runtime", 0), f"{where}.runtime", 0, u64),
                     _int_field(config.get("deadline", 0), f"{where}.deadline", 0, u64),
                     _int_field(config.get("period", 0), f"{where}.period", 0, u64))


def apparmor_enabled(sys=SYSTEM) -> bool:
    try:
        return (os.path.isdir("/sys/kernel/security/apparmor")
                and sys.read_text("/sys/module/apparmor/parameters/enabled").startswith("Y"))
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def prepare(spec: dict, process: dict | None = None, *, preserve_fds: int = 0,
            sys: Syscalls = SYSTEM) -> ProcessPlan:
    """Validate the process settings and precompute what the init applies later.

    `process` defaults to spec["process"]; `exec` passes its process.json and the
    container's spec (for its linux section). Raises ConfigError naming the field."""
    process = spec.get("process") if process is None else process
    if not isinstance(process, dict):
        raise ConfigError("process", "is missing; a container needs a process to run")
    linux = spec.get("linux") or {}

    args = process.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError("process.args", "must be a non-empty list of strings (the program and its arguments)")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError("process.cwd", f"{cwd!r} must be an absolute path")

    plan = ProcessPlan(args=args, env=_parse_env(process.get("env")), cwd=cwd, preserve_fds=preserve_fds)

    user = process.get("user") or {}
    plan.uid = _int_field(user.get("uid", 0), "process.user.uid", 0, 0xFFFFFFFE)
    plan.gid = _int_field(user.get("gid", 0), "process.user.gid", 0, 0xFFFFFFFE)
    plan.additional_gids = [_int_field(g, f"process.user.additionalGids[{i}]", 0, 0xFFFFFFFE)
                            for i, g in enumerate(user.get("additionalGids") or [])]
    if user.get("umask") is not None:
        plan.umask = _int_field(user["umask"], "process.user.umask", 0, 0o777)

    plan.rlimits = _parse_rlimits(process.get("rlimits"), sys)
    plan.capabilities = capability_sets.parse(process.get("capabilities"), syscaps.last_cap())
    plan.no_new_privileges = bool(process.get("noNewPrivileges"))
    if process.get("oomScoreAdj") is not None:
        plan.oom_score_adj = _int_field(process["oomScoreAdj"], "process.oomScoreAdj", -1000, 1000)
    if process.get("ioPriority") is not None:
        io = process["ioPriority"]
        io_class = IO_PRIORITY_CLASSES.get(io.get("class"))
        if io_class is None:
            raise ConfigError("process.ioPriority.class", f"unknown class {io.get('class')!r}; use one of "
                              f"{', '.join(IO_PRIORITY_CLASSES)}")
        plan.io_priority = (io_class, _int_field(io.get("priority", 0), "process.ioPriority.priority", 0, 7))
    if process.get("scheduler") is not None:
        plan.scheduler = _parse_scheduler(process["scheduler"])

    personality = linux.get("personality")
    if personality is not None:
        domain = PERSONALITY_DOMAINS.get(personality.get("domain"))
        if domain is None:
            raise ConfigError("linux.personality.domain", f"unknown domain {personality.get('domain')!r}; "
                              "use LINUX or LINUX32")
        if personality.get("flags"):
            raise ConfigError("linux.personality.flags", "no personality flags are supported; remove them")
        plan.personality = domain

    plan.apparmor_profile = process.get("apparmorProfile") or ""
    if plan.apparmor_profile and not apparmor_enabled(sys):
        raise ConfigError("process.apparmorProfile", f"{plan.apparmor_profile!r} is asked for but AppArmor "
                          "is not enabled on this host; remove apparmorProfile or enable AppArmor")
    plan.selinux_label = process.get("selinuxLabel") or ""
    if plan.selinux_label and not selinux_enabled():
        raise ConfigError("process.selinuxLabel", f"{plan.selinux_label!r} is asked for but SELinux is not "
                          "enabled on this host; remove selinuxLabel or enable SELinux")

    if linux.get("seccomp") is not None:
        plan.seccomp = seccomp_config.translate(linux["seccomp"])
        plan.seccomp_filter = seccomp_config.build(plan.seccomp)
        if plan.seccomp.uses_notify:
            plan.seccomp_listener = seccomp_config.connect_listener(plan.seccomp.listener_path)
            _fds_needed_until_exec.add(plan.seccomp_listener.fileno())
    return plan


def environment(plan: ProcessPlan) -> dict[str, str]:
    return plan.env


# ---------------------------------------------------------------- apply_early

def _home_of(uid: int, sys) -> str:
    """The home directory of uid in the container's /etc/passwd; "/" as runc when absent."""
    try:
        for line in sys.read_text("/etc/passwd").splitlines():
            fields = line.split(":")
            if len(fields) >= 6 and fields[2] == str(uid):
                return fields[5] or "/"
    except (OSError, UnicodeDecodeError):
        pass
    return "/"


def _lsm_exec_label(path_suffix: str, value: str, field_name: str, sys) -> None:
    """Label the next execve; per thread, so through /proc/thread-self."""
    candidates = [f"/proc/thread-self/attr/{path_suffix}", "/proc/thread-self/attr/exec"]
    for path in candidates:
        try:
            sys.write_proc(path, value)
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(field_name, f"cannot apply {value!r}: {e.strerror}") from None
    raise ConfigError(field_name, "the kernel offers no /proc/thread-self/attr to set it")


def apply_early(plan: ProcessPlan, sys: Syscalls = SYSTEM) -> None:
    """Settings that need root, applied inside the final rootfs before the user switch."""
    for resource, soft, hard in plan.rlimits:
        try:
            sys.setrlimit(resource, soft, hard)
        except OSError as e:
            name = next(n for n, r in RLIMITS.items() if r == resource)
            raise OciError(f"config.json: process.rlimits: cannot set {name} to soft {soft} hard {hard}: "
                           f"{e.strerror}") from None
    if plan.oom_score_adj is not None:
        try:
            sys.write_proc("/proc/self/oom_score_adj", str(plan.oom_score_adj))
        except OSError as e:
            hint = ("; lowering the OOM score needs CAP_SYS_RESOURCE, which this runtime does not have"
                    if e.errno in (errno.EACCES, errno.EPERM) else "")
            raise ConfigError("process.oomScoreAdj", f"cannot set {plan.oom_score_adj}: {e.strerror}{hint}") from None
    if plan.io_priority is not None:
        try:
            sys.ioprio_set(*plan.io_priority)
        except OSError as e:
            raise ConfigError("process.ioPriority", f"cannot set it: {e.strerror}") from None
    if plan.scheduler is not None:
        s = plan.scheduler
        try:
            sys.sched_setattr(s.policy, s.flags, s.nice, s.priority, s.runtime, s.deadline, s.period)
        except OSError as e:
            raise ConfigError("process.scheduler", f"the kernel refused it: {e.strerror}") from None
    if plan.personality is not None:
        try:
            sys.personality(plan.personality)
        except OSError as e:
            raise ConfigError("linux.personality", f"cannot set it: {e.strerror}") from None
    if plan.apparmor_profile:
        _lsm_exec_label("apparmor/exec", f"exec {plan.apparmor_profile}", "process.apparmorProfile", sys)
    if plan.selinux_label:
        _lsm_exec_label("selinux/exec", plan.selinux_label, "process.selinuxLabel", sys)
    sys.umask(plan.umask)
    if "HOME" not in plan.env:
        plan.env["HOME"] = _home_of(plan.uid, sys)
    plan.cwd_fd = _open_cwd(plan.cwd)


def _open_cwd(cwd: str) -> int:
    """Open (creating what is missing) cwd inside the root, refusing /proc magic links,
    so a cwd like /proc/self/fd/N can neither reach a runtime fd nor have its target's
    name recreated in the rootfs (CVE-2024-21626)."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _open_or_create_dirs(root, cwd)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        if e.errno == errno.ELOOP:
            reason += " (magic links such as /proc/self/fd/N are refused: they could lead out of the container)"
        raise ConfigError("process.cwd", f"{cwd!r} cannot be opened or created inside the container: {reason}") from None
    finally:
        os.close(root)


def _open_or_create_dirs(root: int, path: str) -> int:
    """Each prefix resolved by the kernel inside the root without magic links, a
    missing last piece created in the directory already open."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    resolve = sysmount.RESOLVE_IN_ROOT | sysmount.RESOLVE_NO_MAGICLINKS
    try:
        here = sysmount.openat2(root, ".", flags, 0, resolve)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        return safepath.mkdir_all(root, path)  # kernels before 5.6: the userspace walk
    try:
        done: list[str] = []
        for name in safepath.components(path):
            done.append(name)
            try:
                below = sysmount.openat2(root, "/".join(done), flags, 0, resolve)
            except FileNotFoundError:
                os.mkdir(name, 0o755, dir_fd=here)
                below = os.open(name, flags | os.O_NOFOLLOW, dir_fd=here)
            os.close(here)
            here = below
        return here
    except BaseException:
        os.close(here)
        raise


# ---------------------------------------------------------------- switch_user

def _chdir_checked(plan: ProcessPlan, sys) -> None:
    sys.fchdir(plan.cwd_fd)
    # getcwd fails with ENOENT ("(unreachable)") when the directory is outside
    # our root: the sign of an escape through a leaked fd.
    try:
        where = sys.getcwd()
    except FileNotFoundError:
        where = ""
    if not where.startswith("/"):
        raise OciError(f"config.json: process.cwd: {plan.cwd!r} is outside of the container's root; "
                       "possible container breakout detected, refusing to run")


def switch_user(plan: ProcessPlan, listener_state: dict | None = None, sys: Syscalls = SYSTEM) -> None:
    """Become the configured user with the configured capabilities, in cwd.

    Without noNewPrivileges, loading a seccomp filter needs CAP_SYS_ADMIN, so
    (as runc does) the filter goes in here, before capabilities are dropped,
    and the agent should get listener_state (the container state) here already
    if the filter notifies; otherwise it gets it in load_seccomp."""
    if plan.seccomp_filter is not None and not plan.no_new_privileges:
        _load_filter(plan)
        # Sent right away when we can: until the agent has the fd, a notified
        # syscall of the init itself would wait forever.
        if listener_state is not None:
            _send_to_listener(plan, listener_state)

    # cwd first, still as root, so a directory only root may search works as
    # with runc; where root is refused (root-squashed NFS), retry as the user.
    chdir_done = False
    if plan.cwd_fd >= 0:
        try:
            _chdir_checked(plan, sys)
            chdir_done = True
        except PermissionError:
            pass

    masks = plan.capabilities
    if masks is not None:
        capability_sets.drop_bounding(masks, sys)
    # keepcaps: setuid away from 0 would otherwise clear the permitted set
    # before we get to set it as configured.
    sys.set_keepcaps(True)
    if plan.additional_gids or _setgroups_allowed(sys):
        try:
            sys.setgroups(plan.additional_gids)
        except OSError as e:
            raise ConfigError("process.user.additionalGids", f"cannot set {plan.additional_gids}: {e.strerror}") from None
    try:
        sys.setresgid(plan.gid, plan.gid, plan.gid)
        sys.setresuid(plan.uid, plan.uid, plan.uid)
    except OSError as e:
        raise ConfigError("process.user", f"cannot switch to uid {plan.uid} gid {plan.gid}: {e.strerror}; "
                          "is the id mapped in the user namespace?") from None
    sys.set_keepcaps(False)
    if masks is not None:
        try:
            capability_sets.apply_sets(masks, sys)
        except OSError as e:
            raise ConfigError("process.capabilities", f"the kernel refused them: {e.strerror}") from None

    if plan.cwd_fd >= 0:
        if not chdir_done:
            try:
                _chdir_checked(plan, sys)
            except OSError as e:
                raise ConfigError("process.cwd", f"cannot enter {plan.cwd!r} as uid {plan.uid}: {e.strerror}") from None
        os.close(plan.cwd_fd)
        plan.cwd_fd = -1
    if plan.no_new_privileges:
        sys.set_no_new_privs()


def _setgroups_allowed(sys) -> bool:
    """In a user namespace whose setgroups is "deny", only an empty request is fine to skip."""
    try:
        return sys.read_text("/proc/self/setgroups").strip() != "deny"
    except OSError:
        return True


# ---------------------------------------------------------------- executable

def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _outside_root(fd: int, plan: ProcessPlan) -> bool:
    """Whether an opened file is not reachable from our root (and is not one of the fds
    the container is given): the kernel names it by a path that leads elsewhere."""
    st = os.fstat(fd)
    for given in range(3 + plan.preserve_fds):
        try:
            if _same_file(os.fstat(given), st):
                return False
        except OSError:
            continue
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False  # no /proc in the container, so no /proc/self/fd to escape through
    try:
        return not (name.startswith("/") and _same_file(os.stat(name), st))
    except OSError:
        return True


def _check_candidate(path: str, plan: ProcessPlan) -> bool:
    """True when path is an executable regular file inside the container."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if _outside_root(fd, plan):
            raise OciError(f"config.json: process.args[0]: {plan.args[0]!r} leads outside of the container's "
                           "root; possible container breakout detected, refusing to run")
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    return stat.S_ISREG(mode) and os.access(path, os.X_OK)


def resolve_executable(plan: ProcessPlan) -> str:
    """args[0] looked up in the container's PATH (from process.env), as execvp would."""
    name = plan.args[0]
    if "/" in name:
        if not os.path.lexists(name):
            raise ExecutableNotFound(name)
        if not _check_candidate(name, plan):
            raise PermissionDeniedExec(name)
        return name
    for directory in plan.env.get("PATH", "").split(":"):
        candidate = os.path.join(directory or ".", name)
        if _check_candidate(candidate, plan):
            return candidate
    raise ExecutableNotFound(name)


# ---------------------------------------------------------------- fds, seccomp

def close_fds(keep: set[int]) -> None:
    """Close every descriptor but stdio and `keep` (plus what load_seccomp still needs).

    Closed, not just marked close-on-exec: execve resolves /proc/self/fd/N in
    args[0] before close-on-exec takes effect."""
    keep = {fd for fd in keep | _fds_needed_until_exec if fd > 2}
    _, hard = sysproc.getrlimit(RLIMITS["RLIMIT_NOFILE"])
    upper = min(hard, 1 << 20) + 1
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, upper)


def _load_filter(plan: ProcessPlan) -> None:
    if plan.seccomp_loaded:
        return
    try:
        plan.seccomp_filter.load()
    except OSError as e:
        raise OciError(f"config.json: linux.seccomp: cannot load the filter: {e.strerror}") from None
    plan.seccomp_loaded = True


def _send_to_listener(plan: ProcessPlan, listener_state: dict | None) -> None:
    if plan.seccomp_listener is None:
        return
    notify_fd = plan.seccomp_filter.notify_fd()
    message = seccomp_config.listener_message(listener_state or {}, plan.seccomp.listener_metadata)
    _fds_needed_until_exec.discard(plan.seccomp_listener.fileno())
    listener, plan.seccomp_listener = plan.seccomp_listener, None
    seccomp_config.send_listener_fd(listener, notify_fd, message)


def load_seccomp(plan: ProcessPlan, listener_state: dict | None = None) -> None:
    """Load the filter (unless switch_user already had to) and hand its notify fd to
    the agent. When noNewPrivileges lets us wait until now, execve is the only
    syscall of the runtime the filter sees."""
    if plan.seccomp_filter is None:
        return
    _load_filter(plan)
    _send_to_listener(plan, listener_state)
