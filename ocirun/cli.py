"""The command line: runc's commands and flags, so engines can swap us in.

This is the reference for every command and flag. main.py parses the few
hot commands itself when it can (so they skip importing click); each command
here imports the machinery it needs only when it runs.
"""

import sys

import click

from . import __version__, OCI_VERSION
from .errors import OciError
from .log import logger
from .state import DEFAULT_ROOT, Store


class Globals:
    def __init__(self, root: str, systemd_cgroup: bool):
        self.store = Store(root)
        self.systemd_cgroup = systemd_cgroup


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="ocirun",
                      message=f"%(prog)s version %(version)s\nspec: {OCI_VERSION}\n"
                              f"python: {sys.version.split()[0]}")
@click.option("--root", default=DEFAULT_ROOT, show_default=True, help="where container state is kept")
@click.option("--log", "log_path", default="", help="write log lines to this file")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True, help="log debug messages")
@click.option("--systemd-cgroup", is_flag=True, help="manage cgroups through systemd")
@click.option("--rootless", default="auto", hidden=True, help="accepted for runc compatibility")
@click.pass_context
def cli(ctx, root, log_path, log_format, debug, systemd_cgroup, rootless):
    """ocirun: an OCI runtime, runc-compatible."""
    logger.configure(log_path, log_format, debug)
    ctx.obj = Globals(root, systemd_cgroup)


def _create_options(f):
    for decorator in reversed([
        click.option("--bundle", "-b", default=".", help="path to the bundle (config.json + rootfs)"),
        click.option("--pid-file", default=None, help="write init's pid to this file"),
        click.option("--console-socket", default=None,
                     help="unix socket that receives the pty master when process.terminal is set"),
        click.option("--no-pivot", is_flag=True, help="use MS_MOVE + chroot instead of pivot_root"),
        click.option("--no-new-keyring", is_flag=True, help="keep the caller's session keyring"),
        click.option("--preserve-fds", type=click.IntRange(min=0), default=0,
                     help="pass this many fds after stdio to the container"),
    ]):
        f = decorator(f)
    return f


@cli.command()
@click.argument("container_id")
@_create_options
@click.pass_obj
def create(g, container_id, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds):
    """Create a container; its process waits for `start`."""
    from .lifecycle.create import create as do_create
    do_create(g.store, container_id, bundle, pid_file=pid_file, console_socket=console_socket,
              no_pivot=no_pivot, no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
              systemd_cgroup=g.systemd_cgroup)


@cli.command()
@click.argument("container_id")
@click.pass_obj
def start(g, container_id):
    """Run the user process of a created container."""
    from .lifecycle.start import start as do_start
    do_start(g.store, container_id)


@cli.command()
@click.argument("container_id")
@_create_options
@click.option("--detach", "-d", is_flag=True, help="return once the process has started")
@click.pass_obj
def run(g, container_id, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds, detach):
    """Create and start a container; in the foreground, exit with its exit code."""
    from .lifecycle.run import run as do_run
    code = do_run(g.store, container_id, bundle, detach=detach, pid_file=pid_file,
                  console_socket=console_socket, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                  preserve_fds=preserve_fds, systemd_cgroup=g.systemd_cgroup)
    sys.exit(code)


@cli.command()
@click.argument("container_id")
@click.pass_obj
def state(g, container_id):
    """Print the state of a container as JSON."""
    from .lifecycle.query import state_json
    click.echo(state_json(g.store, container_id))


@cli.command()
@click.argument("container_id")
@click.argument("signal_name", default="SIGTERM")
@click.option("--all", "-a", "all_processes", is_flag=True, help="signal every process in the container")
@click.pass_obj
def kill(g, container_id, signal_name, all_processes):
    """Send a signal (default SIGTERM) to the container."""
    from .lifecycle.kill import kill as do_kill
    do_kill(g.store, container_id, signal_name, all_processes)


@cli.command()
@click.argument("container_id")
@click.option("--force", "-f", is_flag=True, help="kill the container if it is still running")
@click.pass_obj
def delete(g, container_id, force):
    """Delete a stopped (or, with --force, any) container."""
    from .lifecycle.delete import delete_command
    delete_command(g.store, container_id, force)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("container_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--process", "-p", "process_file", default=None, help="process.json to run")
@click.option("--tty", "-t", is_flag=True, help="allocate a pseudo-TTY")
@click.option("--console-socket", default=None, help="unix socket that receives the pty master")
@click.option("--detach", "-d", is_flag=True, help="return once the process has started")
@click.option("--pid-file", default=None, help="write the process's pid to this file")
@click.option("--cwd", default=None, help="working directory in the container")
@click.option("--env", "-e", multiple=True, help="KEY=VALUE to set (repeatable)")
@click.option("--user", "-u", default=None, help="uid[:gid]")
@click.option("--additional-gids", "-g", multiple=True, type=int, help="extra group (repeatable)")
@click.option("--cap", "-c", multiple=True, help="capability to add (repeatable)")
@click.option("--no-new-privs", is_flag=True, help="set no_new_privs")
@click.option("--apparmor", default=None, help="AppArmor profile")
@click.option("--process-label", default=None, help="SELinux label")
@click.option("--preserve-fds", type=click.IntRange(min=0), default=0)
@click.option("--ignore-paused", is_flag=True, help="allow exec into a paused container")
@click.pass_obj
def exec(g, container_id, command, process_file, tty, console_socket, detach, pid_file, cwd, env,
         user, additional_gids, cap, no_new_privs, apparmor, process_label, preserve_fds,
         ignore_paused):
    """Run a process in a running container."""
    from .lifecycle import exec as lifecycle_exec
    if process_file:
        proc = lifecycle_exec.load_process_file(process_file)
    else:
        if not command:
            raise OciError("exec needs a command, or --process FILE")
        base = g.store.load(container_id).config.get("process") or {}
        proc = lifecycle_exec.build_process(
            base, list(command), tty=tty, cwd=cwd, env=list(env), user=user,
            additional_gids=list(additional_gids), caps=list(cap), no_new_privs=no_new_privs,
            apparmor=apparmor, process_label=process_label)
    code = lifecycle_exec.exec_in_container(
        g.store, container_id, proc, detach=detach, pid_file=pid_file,
        console_socket=console_socket, preserve_fds=preserve_fds, ignore_paused=ignore_paused)
    sys.exit(code)


@cli.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="print only the ids")
@click.pass_obj
def list_(g, fmt, quiet):
    """List containers."""
    from .lifecycle.query import list_containers
    output = list_containers(g.store, fmt, quiet)
    if output:
        click.echo(output)


@cli.command()
@click.option("--bundle", "-b", default=".", help="directory to write config.json into")
@click.option("--rootless", is_flag=True, help="a config for a container run by an unprivileged user")
def spec(bundle, rootless):
    """Write a default config.json."""
    from .lifecycle.spec import write_spec
    write_spec(bundle, rootless)


@cli.command()
def features():
    """Print what this runtime implements (runtime-spec features document)."""
    import json
    from .features import features_document
    click.echo(json.dumps(features_document(), indent=2))


def _register_cgroup_commands() -> None:
    from .cgroups.commands import events, pause, ps, resume, update
    for command in (update, pause, resume, ps, events):
        cli.add_command(command)


_register_cgroup_commands()


def run_click() -> int:
    """Run the click application; click's own usage errors become one line too."""
    try:
        cli.main(sys.argv[1:], prog_name="ocirun", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.Abort:
        return 130
    except click.ClickException as error:
        ctx = getattr(error, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        logger.error(error.format_message() + hint)
        return error.exit_code
    return 0
