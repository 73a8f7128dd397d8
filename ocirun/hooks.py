"""POSIX-platform hooks (config.md "Hooks"): run a program, state JSON on stdin.

Where each phase runs is decided by the caller: prestart and createRuntime by
the runtime after the namespaces exist, createContainer and startContainer by
the container's init inside its namespaces, poststart by `start`, poststop by
`delete`. A failing hook fails the operation, except poststart and poststop,
which the spec says only warn.
"""

import json

from .errors import OciError

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
WARN_ONLY = ("poststart", "poststop")


def run_hooks(spec: dict, phase: str, state: dict, warn=None) -> None:
    """Run every hook of `phase` in order; stop at the first failure unless it only warns."""
    for index, hook in enumerate((spec.get("hooks") or {}).get(phase) or []):
        try:
            run_hook(hook, state, f"hooks.{phase}[{index}]")
        except OciError as e:
            if phase in WARN_ONLY and warn is not None:
                warn(str(e))
            elif phase not in WARN_ONLY:
                raise


def preload() -> None:
    """Import what running a hook needs, for a process about to lose the host's
    filesystem (init runs startContainer hooks after pivot_root)."""
    import subprocess  # noqa: F401


def run_hook(hook: dict, state: dict, where: str) -> None:
    import subprocess
    path = hook["path"]
    argv = hook.get("args") or [path]
    env = dict(entry.split("=", 1) for entry in hook.get("env") or [] if "=" in entry)
    timeout = hook.get("timeout")
    try:
        proc = subprocess.Popen(argv, executable=path, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
    except OSError as e:
        raise OciError(f"{where}: cannot run {path}: {e.strerror}") from None
    try:
        out, err = proc.communicate(json.dumps(state).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise OciError(f"{where}: {path} timed out after {timeout}s") from None
    except BrokenPipeError:
        out, err = proc.communicate()
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip().splitlines()
        reason = f"exit status {proc.returncode}" if proc.returncode > 0 else \
            f"killed by signal {-proc.returncode}"
        raise OciError(f"{where}: {path} failed ({reason})" + (f": {detail[-1]}" if detail else ""))
