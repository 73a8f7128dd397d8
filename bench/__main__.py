"""python -m bench [--quick] [--only SECTION,...] [--out DIR]

Measures ocirun against its anchors in one run (A/B alternated, medians),
prints the table and writes results.json, table.txt, profile.txt and
results.png under bench/results/ (or --out). Everything it creates (containers,
cgroups under /ocirun-bench, the registry, engines' storage, temp dirs) is
removed before it exits."""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import engines, images, lifecycle, profile, report
from .common import (
    CGROUP_PARENT,
    OCIRUN,
    RESULTS,
    RUNC,
    Row,
    Runtime,
    log,
    remove_cgroups,
)
from engines_cleanup import existing_globals, remove_new_globals  # on sys.path through .common

SECTIONS = ("cycle", "ops", "scale", "engines", "images", "profile")
FULL = {"cycle": 100, "ops": 20, "scale": 200, "engines": 10, "images": 3}
QUICK = {"cycle": 3, "ops": 2, "scale": 6, "engines": 1, "images": 1}


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few iterations and a small image: checks the harness, not speed")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    counts = QUICK if args.quick else FULL
    if os.geteuid() != 0:
        sys.stderr.write("bench: run as root (containers, cgroups, mounts)\n")
        return 2
    signal.signal(signal.SIGTERM, _terminate)

    work = Path(tempfile.mkdtemp(prefix="ocirun-bench-"))
    roots = Path(f"/run/ocirun-bench/{os.getpid()}")
    runtimes = [Runtime("ocirun", OCIRUN, roots / "ocirun"), Runtime("runc", RUNC, roots / "runc")]
    existed = existing_globals()
    rows: list[Row] = []
    profile_lines: list[str] = []
    started = time.monotonic()
    try:
        for section in [s for s in SECTIONS if s in only]:
            log(f"{section} ...")
            t0 = time.monotonic()
            for rt in runtimes:
                rt.failed = ""
            try:
                if section == "cycle":
                    rows += lifecycle.cycle(runtimes, work / "cycle", counts["cycle"])
                elif section == "ops":
                    rows += lifecycle.operations(runtimes, work / "ops", counts["ops"])
                elif section == "scale":
                    rows += lifecycle.scale(runtimes, work / "scale", counts["scale"])
                elif section == "engines":
                    rows += engines.podman(work, counts["engines"])
                    rows += engines.containerd(work, counts["engines"])
                elif section == "images":
                    rows += images.images(work / "images", counts["images"], small=args.quick)
                elif section == "profile":
                    profile_lines = profile.profile(runtimes, work / "profile")
            except Exception as e:  # noqa: BLE001  one broken section must not hide the others' figures
                log(f"{section} failed: {type(e).__name__}: {e}")
                rows.append(Row(section, f"{section} (section failed)", "", None, None, "-",
                                note=f"{type(e).__name__}: {e}"[:300]))
            for rt in runtimes:
                if rt.failed:
                    log(f"  {rt.name} failed in {section}: {rt.failed}")
            log(f"{section} took {time.monotonic() - t0:.0f} s")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        for rt in runtimes:
            rt.cleanup()
        remove_cgroups(CGROUP_PARENT)
        shutil.rmtree(roots, ignore_errors=True)
        try:
            roots.parent.rmdir()
        except OSError:
            pass
        remove_new_globals(existed)
        shutil.rmtree(work, ignore_errors=True)

    settings = {"quick": args.quick, "counts": counts, "sections": only,
                "ocirun": OCIRUN, "runc": RUNC, "seconds": round(time.monotonic() - started, 1)}
    report.write(rows, args.out, settings, profile_lines)
    print(report.table(rows))
    if profile_lines:
        print("\n" + "\n".join(profile_lines))
    print(f"\nresults: {args.out}/results.json, table.txt, results.png"
          f" ({settings['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
