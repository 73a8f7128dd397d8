"""CVE-2019-5736 class: the runtime is Python, and its binary must stay out of reach.

While `create` has left init waiting (pid 1 of the container, still the
host's Python), a process in the container tries to open /proc/1/exe for
reading and writing: init is non-dumpable, so the kernel refuses both.
"""

import pytest

pytestmark = pytest.mark.root

PROBE = ("for mode in r w; do "
         "if [ $mode = r ]; then (exec 3</proc/1/exe) 2>/dev/null; "
         "else (exec 3>>/proc/1/exe) 2>/dev/null; fi "
         "&& echo $mode:opened || echo $mode:refused; done; "
         "readlink /proc/1/exe >/dev/null 2>&1 && echo link:readable || echo link:refused")


def test_waiting_init_exe_is_out_of_reach(ocirun, make_bundle):
    ocirun("create", "exe", "-b", make_bundle(args=["sleep", "1000"]), check=True)
    try:
        result = ocirun("exec", "exe", "sh", "-c", PROBE, check=True)
    finally:
        ocirun("delete", "--force", "exe", check=True)
    assert result.stdout.split() == ["r:refused", "w:refused", "link:refused"]
