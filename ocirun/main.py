"""The `ocirun` entry point: turn every failure into one line and an exit status.

Engines call `state`, `start`, `kill`, `delete` and `create` many times per
container (and `list` is how people look), and every call pays Python's start-up. So those commands, when
written the way engines write them, are parsed here by a small table-driven
parser and never import click; anything else (help, unusual spellings, the
other commands) goes to the click application in cli.py, which is the
reference for every flag. tests/lifecycle/test_fast_cli.py keeps the two in
step.
"""

import sys

from .errors import OciError
from .log import logger

# Global flags: name -> takes a value?
GLOBAL_FLAGS = {"--root": True, "--log": True, "--log-format": True, "--debug": False,
                "--systemd-cgroup": False, "--rootless": True}

# Fast commands: flag spellings -> (parameter, takes a value?), and positional parameters.
CREATE_FLAGS = {
    "--bundle": ("bundle", True), "-b": ("bundle", True),
    "--pid-file": ("pid_file", True), "--console-socket": ("console_socket", True),
    "--no-pivot": ("no_pivot", False), "--no-new-keyring": ("no_new_keyring", False),
    "--preserve-fds": ("preserve_fds", True),
}
FAST_COMMANDS = {
    "state": ({}, ["container_id"]),
    "start": ({}, ["container_id"]),
    "kill": ({"--all": ("all_processes", False), "-a": ("all_processes", False)},
             ["container_id", "signal_name"]),
    "delete": ({"--force": ("force", False), "-f": ("force", False)}, ["container_id"]),
    "create": (CREATE_FLAGS, ["container_id"]),
    "run": ({**CREATE_FLAGS, "--detach": ("detach", False), "-d": ("detach", False)},
            ["container_id"]),
    "list": ({"--format": ("fmt", True), "-f": ("fmt", True),
              "--quiet": ("quiet", False), "-q": ("quiet", False)}, []),
}


class NotFast(Exception):
    """The command line is not one the fast path handles: click will."""


def parse_globals(argv: list[str]) -> tuple[dict, int]:
    """Global flags before the command: (flags, index of the command)."""
    found = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        flag, has_value, value = argv[i].partition("=")
        if flag not in GLOBAL_FLAGS:
            raise NotFast(flag)
        if GLOBAL_FLAGS[flag] and not has_value:
            i += 1
            if i == len(argv):
                raise NotFast(flag)
            value = argv[i]
        found[flag] = value if GLOBAL_FLAGS[flag] else True
        i += 1
    return found, i


def parse_fast(argv: list[str]) -> tuple[dict, str, dict]:
    """(global flags, command, parameters), or NotFast."""
    globals_, i = parse_globals(argv)
    if i == len(argv) or argv[i] not in FAST_COMMANDS:
        raise NotFast("command")
    command = argv[i]
    flags, positional_names = FAST_COMMANDS[command]
    params, positionals = {}, []
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg.startswith("-") and arg != "-":
            flag, has_value, value = arg.partition("=")
            if flag not in flags:
                raise NotFast(flag)
            name, takes_value = flags[flag]
            if takes_value and not has_value:
                j += 1
                if j == len(rest):
                    raise NotFast(flag)
                value = rest[j]
            params[name] = value if takes_value else True
        else:
            positionals.append(arg)
        j += 1
    if len(positionals) > len(positional_names) or (positional_names and not positionals):
        raise NotFast("arguments")
    if params.get("fmt", "table") not in ("table", "json"):
        raise NotFast("--format")
    params.update(zip(positional_names, positionals))
    if "preserve_fds" in params:
        if not params["preserve_fds"].isdigit():
            raise NotFast("--preserve-fds")
        params["preserve_fds"] = int(params["preserve_fds"])
    return globals_, command, params


def run_fast(globals_: dict, command: str, params: dict) -> int:
    from .state import DEFAULT_ROOT, Store
    store = Store(globals_.get("--root", DEFAULT_ROOT))
    systemd = bool(globals_.get("--systemd-cgroup"))
    if command == "state":
        from .lifecycle.query import state_json
        sys.stdout.write(state_json(store, params["container_id"]) + "\n")
    elif command == "start":
        from .lifecycle.start import start
        start(store, params["container_id"])
    elif command == "kill":
        from .lifecycle.kill import kill
        kill(store, params["container_id"], params.get("signal_name", "SIGTERM"),
             params.get("all_processes", False))
    elif command == "delete":
        from .lifecycle.delete import delete_command
        delete_command(store, params["container_id"], params.get("force", False))
    elif command == "create":
        from .lifecycle.create import create
        create(store, systemd_cgroup=systemd, **_create_params(params))
    elif command == "list":
        from .lifecycle.query import list_containers
        output = list_containers(store, params.get("fmt", "table"), params.get("quiet", False))
        if output:
            sys.stdout.write(output + "\n")
    elif command == "run":
        from .lifecycle.run import run
        detach = params.pop("detach", False)
        return run(store, detach=detach, systemd_cgroup=systemd, **_create_params(params))
    return 0


def _create_params(params: dict) -> dict:
    params.setdefault("bundle", ".")
    return params


def configure_log(globals_: dict) -> None:
    log_format = globals_.get("--log-format")
    logger.configure(globals_.get("--log"), log_format if log_format in ("text", "json") else "text",
                     bool(globals_.get("--debug")))


def main() -> None:
    argv = sys.argv[1:]
    try:
        try:
            globals_, command, params = parse_fast(argv)
        except NotFast:
            globals_, command, params = None, None, None
            try:
                configure_log(parse_globals(argv)[0])
            except NotFast:
                pass  # click will say what is wrong with the command line
        if command is not None:
            configure_log(globals_)
            sys.exit(run_fast(globals_, command, params))
        from .cli import run_click
        sys.exit(run_click())
    except OciError as error:
        logger.error(str(error))
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - the user gets one line, never a traceback
        if logger.threshold == 0:
            import traceback
            logger.debug(traceback.format_exc())
        logger.error(f"internal error: {type(error).__name__}: {error} (rerun with --debug for details)")
        sys.exit(1)
