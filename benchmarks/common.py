"""Shared helpers of the benchmark scripts (paths, machine description, tables)."""

import datetime
import json
import os
import platform
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_SHARED = os.path.join(ROOT, "..", "shared", "data")


#: CPU flags (``/proc/cpuinfo``) that decide bfloat16 and compiled speed.
CPU_FEATURES = (
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("amx_bf16", "AMX-BF16"),
)


#: Environment that holds torch's CPU kernels to an instruction set: ATen's
#: dispatch and Inductor's generated code, oneDNN's convolutions, MKL's
#: matrix products (``sklearn_sed.training.fast_path.ISA_VARIABLES``).
ISA_LIMITS = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
}


def cpu_flags():
    """This CPU's instruction-set flags (``/proc/cpuinfo``); empty where unknown."""
    if not os.path.exists("/proc/cpuinfo"):
        return frozenset()
    with open("/proc/cpuinfo") as f:
        return frozenset(f.read().split())


def avx2_only(flags=None):
    """Whether this CPU has AVX2 and no AVX-512 (its own code is AVX2 code)."""
    flags = cpu_flags() if flags is None else flags
    return "avx2" in flags and "avx512f" not in flags


def check_isa(isa, flags=None):
    """Refuse an instruction-set limit that this CPU cannot hold its code to.

    Holding the code to AVX2 is a way to run, on a CPU with AVX-512, what a
    CPU without it runs; on a CPU without AVX-512 it would change nothing
    but the section the figures go to.

    Raises
    ------
    SystemExit
        With a message saying what to run instead.
    """
    if isa != "native" and avx2_only(flags):
        sys.exit(
            f"error: --isa {isa} holds a CPU with AVX-512 to the code of one "
            "without it, but this CPU has AVX2 only: its own code is already "
            "AVX2 code. Run without --isa; the figures go to the section of "
            "CPUs with AVX2 only."
        )


def isa_section(marker, title, isa="native", flags=None):
    """The section marker and title of figures measured with ``isa``.

    Three kinds of figures are kept apart in ``docs/benchmarks.md``: a CPU
    with AVX-512 running its own code (``marker``, ``title``), the same CPU
    held to AVX2 code (``marker_avx2``, "... on AVX2 code paths"), and a
    CPU with AVX2 only (``marker_avx2_cpu``, "... on a CPU with AVX2 only").

    Returns
    -------
    marker, title : str
    """
    if isa != "native":
        return f"{marker}_{isa}", f"{title} on {isa.upper()} code paths"
    if avx2_only(flags):
        return f"{marker}_avx2_cpu", f"{title} on a CPU with AVX2 only"
    return marker, title


def isa_held(isa, limits, in_effect=None):
    """The sentence saying which instruction-set limit a figure ran under.

    Parameters
    ----------
    isa : str
        ``"native"`` (no limit: the empty string) or a key of
        :data:`ISA_LIMITS`.
    limits : dict of str to str
        The environment variables that held the code.
    in_effect : str, optional
        What the code dispatched to (:func:`isa_in_effect`).

    Returns
    -------
    str
        Empty, or a sentence that starts with a space.
    """
    if isa == "native" or not limits:
        return ""
    effect = f"; in effect: {in_effect}" if in_effect else ""
    return (
        f" **Instruction set held to {isa.upper()}** ("
        + " ".join(f"`{k}={v}`" for k, v in limits.items())
        + f"{effect}): the code of a CPU without AVX-512, run by this one."
    )


def _numpy_umath():
    """numpy's C module, which lists its SIMD targets (``numpy.core`` before 2.0)."""
    import numpy as np

    return (getattr(np, "_core", None) or np.core)._multiarray_umath


def numpy_isa_limits(isa):
    """The environment that holds numpy's and OpenBLAS's kernels to ``isa``.

    numpy picks its SIMD kernels at import among the targets it was built
    for (``NPY_DISABLE_CPU_FEATURES`` turns targets off by their names, which
    differ between numpy versions: ``X86_V4`` in numpy 2.4, ``AVX512F`` and
    ``AVX512_SKX`` before); OpenBLAS picks its kernels by CPU model
    (``OPENBLAS_CORETYPE``; Haswell is its AVX2 one). Both must be set
    before the process imports numpy.

    Parameters
    ----------
    isa : str
        A key of :data:`ISA_LIMITS`, or ``"native"`` (no limit).

    Returns
    -------
    dict of str to str
        The variables to add to a child process's environment.
    """
    if isa == "native":
        return {}
    if isa != "avx2":
        raise ValueError(
            f"isa must be 'native' or one of {list(ISA_LIMITS)}, got {isa!r}"
        )
    above = [
        t
        for t in _numpy_umath().__cpu_dispatch__
        if t.startswith("AVX512") or t == "X86_V4"
    ]
    return {"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": " ".join(above)}


def isa_in_effect():
    """What this process's torch, numpy and OpenBLAS dispatch to, in words."""
    import torch

    umath = _numpy_umath()
    # numpy's targets in use: its dispatch targets that this CPU has and that
    # were not turned off (``__cpu_features__`` shows them False).
    found = [t for t in umath.__cpu_dispatch__ if umath.__cpu_features__.get(t)]
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            sorted(
                {
                    f"{i['internal_api']} {i['architecture']}"
                    for i in threadpool_info()
                    if i.get("user_api") == "blas" and i.get("architecture")
                }
            )
        )
    except ImportError:
        pass
    return (
        f"ATen {torch.backends.cpu.get_cpu_capability()}; numpy's SIMD targets "
        f"{' '.join(found) or 'baseline only'}; BLAS {blas or 'unknown'}"
    )


def run_in_child(module, payload, *, env=None, timeout=None):
    """Run ``python -m MODULE --one PAYLOAD`` from the root; its JSON result.

    A benchmark measures a set-up that may abort the interpreter (compiled or
    channels-last kernels do on some CPUs) in a child process, so that the
    abort is recorded instead of ending the benchmark.

    Returns
    -------
    result : object or str
        The JSON of the child's last line of output; or, when it gave none,
        why: "killed by SIGABRT", "failed (exit 1: its last message)".
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, "--one", json.dumps(payload)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode < 0:
        return f"killed by {signal.Signals(-proc.returncode).name}"
    last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:80]
    return f"failed (exit {proc.returncode}: {last})"


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

    flags = ""
    words = cpu_flags()
    if words:
        found = [n for f, n in CPU_FEATURES if f in words]
        flags = f", {' '.join(found) or 'no AVX2'}"
    return (
        f"{os.cpu_count()} CPU cores ({cpu}{flags}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}"
    )


def commit():
    """The checked-out commit, marked ``+changes`` when the tree differs."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", ROOT, *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" +changes" if dirty else "")


def now():
    """UTC timestamp."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_json(path, obj):
    """Write JSON with a trailing newline."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=float)
        f.write("\n")


def write_record(folder, name, result):
    """Write ``result`` as ``folder/<name>-<UTC time>.json`` and say where.

    Returns
    -------
    path : str
        The file written.
    """
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    path = os.path.join(folder, f"{name}-{stamp}.json")
    write_json(path, result)
    print("wrote", path)
    return path


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
