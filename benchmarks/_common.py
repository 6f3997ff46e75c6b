"""Shared helpers of the benchmark scripts (paths, machine description, tables)."""

import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_SHARED = os.path.join(ROOT, "..", "shared", "data")


def require(path, what):
    """Stop with a clear message when a data folder is missing."""
    if not os.path.exists(path):
        sys.exit(
            f"error: {what} not found at {path!r}. Pass its location on the command "
            "line (see --help); the benchmark data is not part of the repository."
        )
    return path


def machine():
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        pass
    import torch

    return (
        f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}"
    )


def now():
    """UTC timestamp."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_json(path, obj):
    """Write JSON with a trailing newline."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=float)
        f.write("\n")


def replace_section(md_path, marker, text):
    """Replace the block between ``<!-- marker -->`` lines in a Markdown file."""
    start, end = f"<!-- {marker} start -->", f"<!-- {marker} end -->"
    body = open(md_path).read() if os.path.exists(md_path) else ""
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in body and end in body:
        body = body[: body.index(start)] + block + body[body.index(end) + len(end) :]
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    with open(md_path, "w") as f:
        f.write(body)


def save_dev_f1_figure(fig, ax, xlabel, title, path):
    """Label, lay out and save a figure of development event F1 curves (the
    stall figures of ``reproduce_table1.py`` and ``gpu_sweep.py``)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("dev event-based F1 (%), tuned per class")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
