"""`python -m bench --quick` runs every section, prints its table, writes its
JSON and chart, and leaves nothing behind. No timing is checked: speed is
what the benchmark reports, not what the tests assert."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECTIONS = {"cycle", "latency", "memory", "scale", "engines", "images"}

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.engines]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("matplotlib", reason="pip install -e '.[bench]' (scripts/setup-host.sh)")
    out = tmp_path_factory.mktemp("bench-results")
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                            cwd=REPO, check=False, capture_output=True, text=True, timeout=600)
    return result, out


def test_quick_bench_succeeds_and_prints_the_table(quick_run):
    result, _ = quick_run
    assert result.returncode == 0, result.stderr[-3000:]
    header = result.stdout.splitlines()[0].split()
    assert header == ["metric", "ocirun", "anchor", "ratio", "target", "met?"]
    assert "[cycle] run /bin/true" in result.stdout
    assert "== ocirun state: imports" in result.stdout


def test_results_json_covers_every_section_with_anchor_figures(quick_run):
    _, out = quick_run
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert {r["section"] for r in rows} == SECTIONS
    assert not [r for r in rows if "(section failed)" in r["metric"]]
    by_metric = {r["metric"]: r for r in rows}
    for metric in ("run /bin/true (median of 3)", "state", "RSS of the init waiting for start"):
        assert by_metric[metric]["anchor"] > 0, by_metric[metric]
    # A missing ocirun figure is allowed (the benchmark goes on), but never unexplained.
    for row in rows:
        if row["ocirun"] is None and row["section"] not in ("scale",):
            assert row["note"], row
    assert results["machine"]["cpus"] >= 1
    assert results["profile"]


def test_chart_and_table_files_are_written(quick_run):
    _, out = quick_run
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "table.txt").read_text().startswith("metric")
    assert "ocirun state" in (out / "profile.txt").read_text()


def test_nothing_is_left_behind(quick_run):
    result, _ = quick_run
    assert result.returncode == 0
    assert not Path("/run/ocirun-bench").exists() or not os.listdir("/run/ocirun-bench")
    for controller in Path("/sys/fs/cgroup").iterdir():
        assert not (controller / "ocirun-bench").exists(), controller
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    # The bench's temp dirs and its containerd's base (not the image cache).
    assert "/ocirun-bench-" not in mounts and "/run/ocirun-bench/" not in mounts
