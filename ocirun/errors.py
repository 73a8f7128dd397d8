"""Errors meant for the person at the terminal (or the engine reading our log).

Anything raised as OciError is printed as one line and turns into a non-zero
exit status; anything else is a bug and still must not reach the user as a
traceback (see cli.main).
"""


class OciError(Exception):
    """A failure the caller can act on; str() is the whole one-line message."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(OciError):
    """config.json asks for something invalid; the message names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"config.json: {field}: {message}" if field else f"config.json: {message}")
        self.field = field


class ExecutableNotFound(OciError):
    """Worded like runc's so engines map it to 127 (podman, containerd)."""

    def __init__(self, name: str):
        super().__init__(f'exec: "{name}": executable file not found in $PATH', exit_code=127)


class PermissionDeniedExec(OciError):
    """Worded like runc's so engines map it to 126."""

    def __init__(self, name: str):
        super().__init__(f'exec: "{name}": permission denied', exit_code=126)
