"""Everything the cgroup managers do to the system goes through CgroupFS.

Tests swap in a fake kernel (a tmpdir laid out like cgroupfs whose mkdir and
write behave like the kernel's) so the exact files and values can be checked
on any host.
"""

import os
import select

from ..sys import bpf


class CgroupFS:
    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def write(self, path: str, value: str) -> None:
        # No O_CREAT: a missing file means a missing controller, not a file to make.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def own_cgroups(self) -> dict[str, str]:
        """This process's cgroup per v1 controller, and under "" its v2 cgroup."""
        return parse_proc_cgroup(self.read("/proc/self/cgroup"))

    def set_device_program(self, cgroup_dir: str, code: bytes) -> None:
        """Attach the program, then detach whatever was attached before it."""
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            old = []
            for prog_id in bpf.prog_query(dirfd):
                old.append(bpf.prog_fd_by_id(prog_id))
            prog = bpf.prog_load_cgroup_device(code)
            try:
                bpf.prog_attach(dirfd, prog)
            finally:
                os.close(prog)
            for fd in old:
                try:
                    bpf.prog_detach(dirfd, fd)
                finally:
                    os.close(fd)
        finally:
            os.close(dirfd)

    def oom_watch_v1(self, memory_dir: str) -> int:
        """An eventfd the kernel signals on every OOM in the memory cgroup."""
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        ofd = os.open(os.path.join(memory_dir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.write(os.path.join(memory_dir, "cgroup.event_control"), f"{efd} {ofd}")
        except OSError:
            os.close(efd)
            raise
        finally:
            # The kernel holds its own reference once registered.
            os.close(ofd)
        return efd

    def wait(self, fd: int, timeout: float, events_file: bool) -> int:
        """Wait on an eventfd (v1: returns its counter) or for a modified-file
        event on an open memory.events (v2: returns 1); 0 on timeout."""
        poller = select.poll()
        poller.register(fd, select.POLLPRI if events_file else select.POLLIN)
        if not poller.poll(timeout * 1000):
            return 0
        # Consuming the notification re-arms it.
        if events_file:
            os.pread(fd, 4096, 0)
            return 1
        return int.from_bytes(os.read(fd, 8), "little")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
        for name in controllers.split(","):
            if name:
                out[name] = path
    return out
