"""The conformance suite, run against ocirun and runc side by side.

It runs as a subprocess because it is its own pytest suite (with its own
--runtime option). Passing means: every spec requirement that runc passes on
this machine, ocirun passes too. The report table is printed for the log.
"""

import os
import subprocess
import sys

import pytest

from ocitest import OCIRUN, REPO

pytestmark = pytest.mark.root


def test_ocirun_passes_what_runc_passes(tmp_path):
    report = subprocess.run(
        [sys.executable, "-m", "conformance.report", "--runtime", f"ocirun={OCIRUN}",
         "--runtime", "runc=/usr/sbin/runc", "--parity", "runc",
         "--json", str(tmp_path / "conformance.json")],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    print(report.stdout)
    assert report.returncode == 0, report.stdout[-4000:] + report.stderr[-2000:]
