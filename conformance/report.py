"""Run the conformance suite once per runtime and print requirement x runtime.

    python -m conformance.report --runtime ocirun=/usr/local/bin/ocirun \\
        --runtime runc=/usr/sbin/runc [--json report.json] [--parity runc] [-- PYTEST_ARGS...]

Each --runtime is NAME=COMMAND, where COMMAND is the binary and any global
flags it needs (quoted as one argument). With --parity REF the exit status is
1 when another runtime fails a requirement that REF passes; otherwise it is 0
once every run produced results, and 2 when one could not run at all.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = Path(__file__).resolve().parent
CELL = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}


def run_suite(name, command, pytest_args):
    """Run pytest on the suite for one runtime; returns its per-test records."""
    with tempfile.TemporaryDirectory(prefix="conformance-report-") as tmp:
        out = Path(tmp) / "results.json"
        argv = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-q",
                "--runtime", f"{name}={command}", "--conformance-json", str(out), *pytest_args]
        proc = subprocess.run(argv, cwd=SUITE.parent, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if not out.exists():
            sys.stderr.write(proc.stdout)
            return None, summary
        return json.loads(out.read_text()), summary


def merge(runs):
    """Group test records by requirement: {(ref, text, level): {runtime: [records]}}."""
    table = {}
    for name, records in runs.items():
        for rec in records:
            key = (rec["ref"], rec["text"], rec["level"])
            table.setdefault(key, {}).setdefault(name, []).append(rec)
    return dict(sorted(table.items(), key=lambda item: (_doc_rank(item[0][0]), item[0][0])))


DOC_ORDER = ("runtime.md", "config.md", "config-linux.md", "runc-cli")


def _doc_rank(ref):
    doc = ref.split("#", 1)[0]
    return DOC_ORDER.index(doc) if doc in DOC_ORDER else len(DOC_ORDER)


def verdict(records):
    """One outcome for a requirement checked by one or more tests."""
    if not records:
        return "missing"
    outcomes = [r["outcome"] for r in records]
    for bad in ("error", "failed"):
        if bad in outcomes:
            return bad
    if all(o == "skipped" for o in outcomes):
        return "skipped"
    return "passed"


def cell(records):
    v = verdict(records)
    text = CELL.get(v, v)
    if v in ("failed", "error") and len(records) > 1:
        text += f" {sum(r['outcome'] == 'passed' for r in records)}/{len(records)}"
    return text


def render(table, names):
    rows = [("requirement", "level", *names)]
    for (ref, text, level), per_runtime in table.items():
        rows.append((f"{ref}: {text}", level, *(cell(per_runtime.get(n, [])) for n in names)))
    req_width = min(max(len(r[0]) for r in rows), 110)
    widths = [req_width, max(len(r[1]) for r in rows)] + [max(len(r[i]) for r in rows) for i in range(2, len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        first = row[0] if len(row[0]) <= req_width else row[0][:req_width - 1] + "…"
        lines.append("  ".join([first.ljust(widths[0]), *(c.ljust(w) for c, w in zip(row[1:], widths[1:]))]).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    totals = []
    for n in names:
        verdicts = [verdict(per.get(n, [])) for per in table.values()]
        totals.append(f"{n}: " + ", ".join(f"{verdicts.count(v)} {CELL.get(v, v)}"
                                             for v in ("passed", "failed", "error", "skipped") if verdicts.count(v)))
    lines += ["", "requirements: " + "; ".join(totals)]
    return "\n".join(lines)


def failures(table, names):
    lines = []
    for n in names:
        for per in table.values():
            for rec in per.get(n, []):
                if rec["outcome"] in ("failed", "error"):
                    lines.append(f"  [{n}] {rec['nodeid'].split('::', 1)[-1]}: {rec['message']}")
    return lines


def parity_gaps(table, reference, names):
    gaps = []
    for key, per in table.items():
        if verdict(per.get(reference, [])) != "passed":
            continue
        for n in names:
            if n != reference and verdict(per.get(n, [])) != "passed":
                gaps.append(f"{n} does not pass what {reference} passes: {key[0]}: {key[1]}")
    return gaps


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m conformance.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", action="append", required=True, metavar="NAME=COMMAND",
                   help="runtime to test, e.g. runc=/usr/sbin/runc; repeatable")
    p.add_argument("--json", metavar="PATH", help="also write the table and every test result as JSON")
    p.add_argument("--parity", metavar="NAME",
                   help="exit 1 when a runtime fails a requirement that runtime NAME passes")
    p.add_argument("--quiet-failures", action="store_true", help="do not list failure messages")
    p.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments, e.g. -k hooks")
    args = p.parse_args(argv)
    runtimes = {}
    for spec in args.runtime:
        name, sep, command = spec.partition("=")
        if not sep:
            name, command = os.path.basename(shlex.split(spec)[0]), spec
        if name in runtimes:
            p.error(f"--runtime {spec}: the name {name} is given twice")
        binary, *flags = shlex.split(command)
        # The suite runs from the repository root, so a relative path given
        # here is anchored to the caller's directory first.
        if "/" in binary:
            binary = os.path.abspath(binary)
        runtimes[name] = shlex.join([binary, *flags])
    if args.parity and args.parity not in runtimes:
        p.error(f"--parity {args.parity}: not one of the --runtime names {sorted(runtimes)}")
    return args, runtimes


def main(argv=None):
    args, runtimes = parse_args(sys.argv[1:] if argv is None else argv)
    runs, broken = {}, []
    for name, command in runtimes.items():
        print(f"conformance: running the suite against {name} ({command})", file=sys.stderr, flush=True)
        records, summary = run_suite(name, command, args.pytest_args)
        print(f"conformance: {name}: {summary}", file=sys.stderr, flush=True)
        if records is None:
            broken.append(name)
            records = []
        runs[name] = records
    names = list(runtimes)
    table = merge(runs)
    print(render(table, names))
    if not args.quiet_failures:
        fails = failures(table, names)
        if fails:
            print("\nfailures:\n" + "\n".join(fails))
    gaps = parity_gaps(table, args.parity, names) if args.parity else []
    if gaps:
        print("\nparity:\n" + "\n".join(f"  {g}" for g in gaps))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "runtimes": runtimes,
            "requirements": [{"ref": ref, "text": text, "level": level,
                              "results": {n: {"verdict": verdict(per.get(n, [])), "tests": per.get(n, [])}
                                          for n in names}}
                             for (ref, text, level), per in table.items()],
        }, indent=2))
    if broken:
        print(f"conformance: the suite could not run against {', '.join(broken)}", file=sys.stderr)
        return 2
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main())
