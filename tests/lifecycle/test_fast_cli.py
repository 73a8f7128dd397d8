"""main.py's fast parser must agree with the click application it shortcuts."""

import pytest

from ocirun import main


def click_flags(command_name):
    from ocirun.cli import cli
    command = cli.commands[command_name]
    flags = {}
    for param in command.params:
        if param.param_type_name == "option":
            for spelling in param.opts + param.secondary_opts:
                flags[spelling] = (param.name, not param.is_flag)
    positionals = [p.name for p in command.params if p.param_type_name == "argument"]
    return flags, positionals


@pytest.mark.parametrize("command_name", sorted(main.FAST_COMMANDS))
def test_fast_flags_are_click_flags(command_name):
    fast_flags, fast_positionals = main.FAST_COMMANDS[command_name]
    flags, positionals = click_flags(command_name)
    for spelling, meaning in fast_flags.items():
        assert flags.get(spelling) == meaning, spelling
    assert fast_positionals == positionals


def test_global_flags_are_click_flags():
    from ocirun.cli import cli
    flags = {s: not p.is_flag for p in cli.params if p.param_type_name == "option"
             for s in p.opts}
    for spelling, takes_value in main.GLOBAL_FLAGS.items():
        assert flags.get(spelling) == takes_value, spelling


@pytest.mark.parametrize("argv, expected", [
    (["state", "c1"], ({}, "state", {"container_id": "c1"})),
    (["--root", "/r", "--log=/l", "--log-format", "json", "kill", "--all", "c1", "9"],
     ({"--root": "/r", "--log": "/l", "--log-format": "json"}, "kill",
      {"all_processes": True, "container_id": "c1", "signal_name": "9"})),
    (["create", "--bundle", "/b", "--pid-file=/p", "c1", "--preserve-fds", "2"],
     ({}, "create", {"bundle": "/b", "pid_file": "/p", "container_id": "c1", "preserve_fds": 2})),
    (["delete", "-f", "c1"], ({}, "delete", {"force": True, "container_id": "c1"})),
    (["list", "-q"], ({}, "list", {"quiet": True})),
    (["list", "--format", "json"], ({}, "list", {"fmt": "json"})),
])
def test_fast_parse(argv, expected):
    assert main.parse_fast(argv) == expected


@pytest.mark.parametrize("argv", [
    ["state"], ["state", "a", "b"], ["state", "--help", "c"], ["--version"], ["exec", "c", "ls"],
    ["--unknown", "state", "c"], ["create", "c", "--preserve-fds", "x"], ["kill", "c", "9", "x"],
    ["create", "c", "--bundle"], ["list", "extra"], ["list", "--format", "yaml"],
])
def test_everything_else_goes_to_click(argv):
    with pytest.raises(main.NotFast):
        main.parse_fast(argv)


def test_every_runc_command_is_there():
    from ocirun.cli import cli
    runc_commands = {"create", "start", "state", "kill", "delete", "run", "exec", "list", "ps",
                     "pause", "resume", "update", "events", "features", "spec"}
    assert runc_commands <= set(cli.commands)
