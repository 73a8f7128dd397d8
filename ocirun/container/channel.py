"""The typed channel between the runtime and the processes it forks.

create talks to its children over one socketpair: every message is one JSON
object on one line with a "type", so each step of the handshake has a name
(as youki's channel does) and an unexpected message is an error, not a hang.
"""

import json
import os
import socket

from ..errors import OciError


class InitExited(OciError):
    """The other end closed without a word: the process died."""

    def __init__(self):
        super().__init__("container init exited before it was ready; see the container's "
                         "stderr (or --log) for why")


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = b""

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(parent), cls(child)

    def send(self, type_: str, **payload) -> None:
        self.sock.sendall(json.dumps({"type": type_, **payload}).encode() + b"\n")

    def recv(self) -> dict | None:
        """The next message, or None when the other end closed without a word."""
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def expect(self, *types: str) -> dict:
        """Receive a message of one of `types`; a peer's "error" becomes our OciError."""
        message = self.recv()
        if message is None:
            raise InitExited()
        if message["type"] == "error":
            raise OciError(message["message"], exit_code=message.get("exit_code"))
        if message["type"] not in types:
            raise OciError(f"internal error: expected {'/'.join(types)} from the container, "
                           f"got {message['type']}")
        return message

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def detach(self) -> int:
        """Hand the socket's fd over (e.g. to survive a fork) without closing it."""
        return self.sock.detach()


def report_error_and_exit(channel: Channel, error: BaseException) -> None:
    """Used by forked children: tell the parent what went wrong, then leave at once."""
    exit_code = getattr(error, "exit_code", 1)
    if isinstance(error, OciError):
        message = str(error)
    elif isinstance(error, OSError):
        message = error.strerror if error.strerror and ":" in error.strerror else str(error)
    else:
        message = f"internal error in container init: {type(error).__name__}: {error}"
    try:
        channel.send("error", message=message, exit_code=exit_code)
    except OSError:
        pass
    os._exit(exit_code or 1)
