"""runc-compatible logging: --log FILE, --log-format text|json, --debug.

conmon and containerd's shim pass `--log FILE --log-format json` and read the
last error line back to show the user why the runtime failed, so the JSON
shape ({"level", "msg", "time"}) is part of the interface, not a taste.
Warnings and errors also go to stderr unless a log file was asked for.
"""

import json
import os
import sys
import time

_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


class Logger:
    def __init__(self):
        self.path = None
        self.format = "text"
        self.threshold = _LEVELS["info"]

    def configure(self, path: str | None, log_format: str, debug: bool) -> None:
        self.path = path or None
        self.format = log_format
        self.threshold = _LEVELS["debug" if debug else "info"]

    def _line(self, level: str, message: str) -> str:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        if self.format == "json":
            return json.dumps({"level": level, "msg": message, "time": stamp})
        return f'time="{stamp}" level={level} msg={json.dumps(message)}'

    def log(self, level: str, message: str) -> None:
        if _LEVELS[level] < self.threshold:
            return
        if self.path:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                with os.fdopen(fd, "a") as f:
                    f.write(self._line(level, message) + "\n")
            except OSError as e:
                sys.stderr.write(f"ocirun: cannot write --log {self.path}: {e.strerror}\n")
        if level in ("warning", "error") and (not self.path or level == "error"):
            sys.stderr.write(f"ocirun: {message}\n" if level == "error" else f"ocirun: warning: {message}\n")
            sys.stderr.flush()

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)


logger = Logger()
