"""process.terminal: a pty for the container, its master handed to the engine.

The pty is opened inside the container (its own devpts instance), so the
slave the process sees is /dev/pts/N of the container. The master travels to
whoever listens on --console-socket as SCM_RIGHTS ancillary data, which is how
conmon and containerd's shim receive it from runc.
"""

import array
import fcntl
import os
import socket
import struct
import termios

from ..errors import OciError

# Python's termios lacks these two (asm-generic ioctl numbers on x86_64 and aarch64).
TIOCGPTN = 0x80045430    # _IOR('T', 0x30, unsigned int): which /dev/pts/N a master is
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): lock or unlock the slave (unlockpt)


def connect_console_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise OciError(f"--console-socket {path}: cannot connect: {e.strerror}") from None
    return sock


def open_pty() -> tuple[int, str]:
    """Open the container's /dev/ptmx; returns the master fd and the slave's path."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    return master, f"/dev/pts/{number}"


def set_size(fd: int, size: dict | None) -> None:
    if size:
        fcntl.ioctl(fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))


def send_master(sock: socket.socket, master: int, slave_path: str) -> None:
    sock.sendmsg([slave_path.encode()],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])


def make_controlling_terminal(slave_path: str) -> None:
    """The slave becomes stdio and the controlling tty of init (already a session leader)."""
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def take_over_terminal(sock: socket.socket, size: dict | None, prepare_slave=None) -> None:
    """Open a pty in the container, hand its master to the engine over `sock`,
    and make the slave our stdio and controlling terminal. `prepare_slave`
    (init's /dev/console bind) runs before the engine can use the pty."""
    master, slave_path = open_pty()
    set_size(master, size)
    if prepare_slave is not None:
        prepare_slave(slave_path)
    send_master(sock, master, slave_path)
    os.close(master)
    sock.close()
    make_controlling_terminal(slave_path)
