"""Argument parsing and config merging of the cgroup commands (no cgroups needed)."""

import pytest

from ocirun.cgroups.commands import _merge, parse_bytes, parse_duration
from ocirun.errors import OciError


@pytest.mark.parametrize("text, value", [("1024", 1024), ("64m", 64 << 20), ("1g", 1 << 30),
                                         ("512K", 512 << 10), ("2mb", 2 << 20), ("-1", -1)])
def test_parse_bytes(text, value):
    assert parse_bytes(text, "--memory") == value


def test_parse_bytes_rejects_junk():
    with pytest.raises(OciError, match="^--memory: 'lots' is not a size"):
        parse_bytes("lots", "--memory")


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("100ms", 0.1), ("1m30s", 90), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "s", "5x", "0s", "-1s"])
def test_parse_duration_rejects(text):
    with pytest.raises(OciError, match="^--interval"):
        parse_duration(text)


def test_merge_keeps_pairs_together_and_never_touches_devices():
    old = {"memory": {"limit": 100, "swap": 200}, "cpu": {"quota": 1000, "period": 100000},
           "devices": [{"allow": False}]}
    merged, changes = _merge(old, {"memory": {"limit": 50}, "cpu": {"period": 50000, "shares": 10},
                                   "devices": [{"allow": True}], "pids": {"limit": 5}})
    assert merged == {"memory": {"limit": 50, "swap": 200},
                      "cpu": {"quota": 1000, "period": 50000, "shares": 10},
                      "devices": [{"allow": False}], "pids": {"limit": 5}}
    assert changes == {"memory": {"limit": 50, "swap": 200},
                       "cpu": {"period": 50000, "shares": 10, "quota": 1000},
                       "pids": {"limit": 5}}
    assert old["memory"] == {"limit": 100, "swap": 200}
