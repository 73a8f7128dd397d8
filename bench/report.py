"""The result table: printed, and written as JSON and as a PNG chart."""

import json
import os
import platform
import time
from pathlib import Path

from .common import Row


def _fmt(value, unit="") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def machine() -> dict:
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def table(rows: list[Row]) -> str:
    header = ("metric", "ocirun", "anchor", "ratio", "target", "met?")
    lines = []
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row.met]
        lines.append((f"[{row.section}] {row.metric}", _fmt(row.ocirun, row.unit),
                      f"{_fmt(row.anchor, row.unit)} ({row.anchor_name})" if row.anchor is not None
                      else f"- ({row.anchor_name})",
                      f"{row.ratio:.2f}x" if row.ratio is not None else "-",
                      row.target_text, met))
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
           "  ".join("-" * w for w in widths)]
    for line, row in zip(lines, rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        if row.note:
            out.append(f"    note: {row.note}")
    return "\n".join(out)


def write(rows: list[Row], out_dir: Path, settings: dict, profile: list[str]) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "settings": settings,
              "rows": [r.as_dict() for r in rows], "profile": profile}
    (out_dir / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "table.txt").write_text(table(rows) + "\n")
    if profile:
        (out_dir / "profile.txt").write_text("\n".join(profile) + "\n")
    chart(rows, out_dir / "results.png", result["machine"])
    return result


def chart(rows: list[Row], path: Path, machine_info: dict):
    """One bar per compared metric: ocirun's figure as a multiple of its
    anchor's, with the target marked; log scale, as the ratios span decades."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def value(row):   # a row with an absolute limit is judged by ocirun's own figure
        return row.ocirun if row.limit is not None else row.ratio

    shown = [r for r in rows if value(r) is not None or r.target is not None]
    height = max(3.0, 0.32 * len(shown) + 1.5)
    fig, ax = plt.subplots(figsize=(11, height))
    for y, row in enumerate(shown):
        label = f"[{row.section}] {row.metric}"
        if value(row) is None:
            ax.text(1, y, "  failed / not measured", va="center", fontsize=8, color="grey")
        else:
            colour = {True: "tab:green", False: "tab:red", None: "tab:blue"}[row.met]
            ax.barh(y, value(row), color=colour, left=0)
            ax.text(value(row), y, f" {value(row):.2f}x", va="center", fontsize=8)
        mark = row.limit if row.limit is not None else row.target
        if mark is not None:
            ax.plot([mark, mark], [y - 0.4, y + 0.4], color="black", lw=2)
        ax.text(0, y, label + "  ", ha="right", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())
    ax.set_yticks([])
    ax.set_xscale("log")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xlabel("ocirun / anchor (growth rows: ocirun's own growth); log scale;\n"
                  "black tick: target; green: met, red: not met", fontsize=9)
    ax.set_title(f"ocirun vs runc, skopeo+umoci: {machine_info['cpus']} x {machine_info['cpu']}, "
                 f"{machine_info['date']}", fontsize=9)
    fig.subplots_adjust(left=0.45, right=0.95, top=1 - 0.6 / height, bottom=0.8 / height)
    fig.savefig(path, dpi=110)
    plt.close(fig)
