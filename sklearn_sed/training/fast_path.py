"""The fastest training set-up proven safe on this machine (``"auto"``).

``compile="auto"`` and ``train_dtype="auto"`` never trust a guess.
:func:`choose_training_path` runs the exact training step that a fit is about
to run (the network as built, its batch size and input shape, each candidate
dtype and compilation) for a few optimizer steps **in a child process**,
compares its losses and gradients with eager float32 within stated
tolerances (:data:`TOLERANCES`), and times both. A child killed by a signal
(Inductor's compiled CPU kernels corrupted the heap on some CPUs: PyTorch
issue 181618), one that runs past its time limit, one whose numbers disagree
with eager float32, and one that is not faster, each leave the fit eager,
with one line saying which and why. The interpreter that trains never runs a
compilation that was not probed.

Verdicts are cached per CPU (model name and instruction-set flags, and the
variables that limit the instruction set torch's kernels use,
``ISA_VARIABLES``) or GPU, torch version, network, batch and input shape
and candidate, in a JSON file of the user's cache folder, so that a machine
pays for a probe once per shape. Environment variables:

``SKLEARN_SED_PROBE``
    ``off`` (or ``0``, ``false``, ``no``): no probe; ``"auto"`` trains float32
    and eager.
``SKLEARN_SED_CACHE_DIR``
    Folder of the verdicts; default ``platformdirs.user_cache_dir("sklearn-sed")``.
``SKLEARN_SED_PROBE_TIMEOUT``
    Seconds a candidate's child may run (default 900), compilation included.
``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``
    Limit the instruction set of ATen and Inductor, oneDNN and MKL:
    ``avx2``, ``AVX2`` and ``AVX2`` run a CPU with AVX-512 on the code paths
    of one with AVX2 only. A verdict is cached per value, and bfloat16 is
    native only where they leave AVX-512 (ATen) and bfloat16 (oneDNN) on.
``TORCHINDUCTOR_COMPILE_THREADS``
    Set to 1 in the child and in the training process when compiling (unless
    already set): compiling with one thread was reported to avoid the heap
    corruption of issue 181618, and compiled the demo's network 6x faster on
    a 2-core AMD EPYC (``docs/recipe.md``).
"""

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch

__all__ = [
    "TOLERANCES",
    "TrainingPath",
    "cache_dir",
    "choose_training_path",
    "ISA_VARIABLES",
    "has_native_bfloat16",
    "probe_enabled",
]

#: Agreement a candidate must show with eager float32 on the same weights and
#: batch: the largest relative difference of the loss over the probe's
#: optimizer steps, and the relative L2 difference of the first step's
#: gradient (all parameters). float32 compiled differs by reordered sums
#: only; bfloat16 autocast rounds activations and weights to 8 bits of
#: mantissa (relative 2**-8 = 0.004 per product), which compounds through
#: the backward pass: 0.14 of relative gradient difference for the ``"cpu"``
#: recipe's network on a 2-core AMD EPYC with AVX-512 BF16. Broken kernels
#: (garbage, NaN) differ by 1 or more.
TOLERANCES = {
    "float32": {"loss": 1e-3, "grad": 1e-2},
    "bfloat16": {"loss": 3e-2, "grad": 0.3},
}
#: A candidate is chosen only if its step takes at most this share of the
#: fallback's (measurement noise must not pick a set-up that is not faster).
MIN_SPEEDUP = 1.05
#: Optimizer steps timed per set-up, after one step of warm-up (compilation).
PROBE_STEPS = 4
DEFAULT_TIMEOUT = 900
#: Bump when the probe's procedure changes: old verdicts are probed again.
PROBE_VERSION = 1
_OFF = {"0", "off", "false", "no"}
#: Environment variables that limit the instruction set of torch's CPU
#: kernels: ATen's dispatch and Inductor's generated code
#: (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``,
#: or its older name ``DNNL_MAX_CPU_ISA``) and MKL's matrix products
#: (``MKL_ENABLE_INSTRUCTIONS``). Part of a verdict's cache key when set.
ISA_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
)
#: oneDNN instruction-set limits (``ONEDNN_MAX_CPU_ISA``) under which its
#: bfloat16 kernels are native: AVX-512 BF16 and every later level.
_ONEDNN_BF16_LEVELS = ("BF16", "FP16", "AMX", "AVX10", "ALL")
#: Verdicts already read in this process, by cache key.
_MEMO = {}


@dataclasses.dataclass(frozen=True)
class TrainingPath:
    """The set-up a fit trains with, and why.

    Attributes
    ----------
    train_dtype : {"float32", "bfloat16"}
        Precision of the training forward pass.
    compile : bool
        Whether the network trains through ``torch.compile``.
    reason : str
        One line: what was probed, what it found.
    probes : tuple of dict
        One verdict per candidate probed (``candidate``, ``outcome`` among
        "works", "aborted", "timeout", "mismatch", "slower", "failed",
        ``detail``, ``step_seconds`` and ``eager_float32_step_seconds``,
        ``cached``).
    """

    train_dtype: str
    compile: bool
    reason: str
    probes: tuple = ()


def probe_enabled():
    """Whether ``SKLEARN_SED_PROBE`` lets ``"auto"`` probe (default yes)."""
    return os.environ.get("SKLEARN_SED_PROBE", "on").strip().lower() not in _OFF


def cache_dir():
    """Return the folder of the probe's verdicts (``SKLEARN_SED_CACHE_DIR``).

    Returns
    -------
    path : pathlib.Path
        Not created here.
    """
    env = os.environ.get("SKLEARN_SED_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    import platformdirs

    return pathlib.Path(platformdirs.user_cache_dir("sklearn-sed"))


@functools.lru_cache(maxsize=1)
def _cpu_flags():
    """CPU model name and flags, from ``/proc/cpuinfo`` where there is one."""
    model, flags = "", ""
    with contextlib.suppress(OSError):
        text = pathlib.Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            if key.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    return model or platform.processor() or platform.machine(), flags


def has_native_bfloat16(device="cpu"):
    """Whether ``device`` computes bfloat16 natively (not emulated).

    CPUs with AVX-512 BF16 or AMX, and CUDA devices that torch says support
    it. On other CPUs bfloat16 autocast is emulated and slower than float32,
    so ``train_dtype="auto"`` does not try it there. Nor does it where the
    environment holds torch below the CPU's own instruction set
    (``ISA_VARIABLES``): ATen below AVX-512 (``ATEN_CPU_CAPABILITY``), or
    oneDNN below AVX-512 BF16 (``ONEDNN_MAX_CPU_ISA``).
    """
    kind = torch.device(device or "cpu").type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind != "cpu":
        return False
    flags = set(_cpu_flags()[1].split())
    if not flags & {"avx512_bf16", "amx_bf16"}:
        return False
    if not _aten_capability().upper().startswith("AVX512"):
        return False
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get(
        "DNNL_MAX_CPU_ISA", "ALL"
    )
    return any(level in limit.upper() for level in _ONEDNN_BF16_LEVELS)


def _aten_capability():
    """Return the instruction set ATen dispatches to ("AVX512", "AVX2", ...)."""
    get = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return get() if get is not None else ""


def _isa_limits():
    """Return the :data:`ISA_VARIABLES` set in this environment, by name."""
    return {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ}


def _device_name(device):
    kind = torch.device(device or "cpu").type
    if kind == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    model, flags = _cpu_flags()
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"{model} (flags {digest}, {os.cpu_count()} cores)"


def _fingerprint(module):
    """Class and parameter shapes of ``module``: what its kernels depend on."""
    shapes = [(name, tuple(p.shape)) for name, p in module.named_parameters()]
    kind = type(module)
    return {
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "parameters": hashlib.sha256(repr(shapes).encode()).hexdigest()[:16],
    }


def _cache_key(module, *, input_shape, batch_size, device, candidate):
    fields = {
        "probe_version": PROBE_VERSION,
        "device": _device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "network": _fingerprint(module),
        "input_shape": list(input_shape),
        "batch_size": int(batch_size),
        "candidate": list(candidate),
        "compile_threads": os.environ.get("TORCHINDUCTOR_COMPILE_THREADS", "1"),
    }
    limits = _isa_limits() if torch.device(device or "cpu").type == "cpu" else {}
    if limits:  # only when set, so that an unlimited CPU's verdicts keep their key
        fields["isa_limits"] = limits
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24], fields


def _read_verdict(key):
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"probe-{key}.json"
    try:
        verdict = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # none yet, or unreadable: probe again
    if not isinstance(verdict, dict) or verdict.get("key") != key:
        return None
    _MEMO[key] = verdict
    return verdict


def _write_verdict(key, verdict):
    _MEMO[key] = verdict
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(verdict, fh, indent=1)
        os.replace(tmp, folder / f"probe-{key}.json")
    except OSError as exc:  # a read-only home: probe again next time
        warnings.warn(
            f"The training probe's verdict could not be cached in {folder} "
            f"({exc}); it will run again in the next process. Set "
            "SKLEARN_SED_CACHE_DIR to a writable folder.",
            UserWarning,
            stacklevel=2,
        )


def _candidates(compile, train_dtype, device):
    """Set-ups to probe, fastest expected first, and the fallback."""
    if train_dtype == "auto":
        dtypes = ["bfloat16", "float32"] if has_native_bfloat16(device) else ["float32"]
        fallback_dtype = "float32"
    else:
        dtypes, fallback_dtype = [train_dtype], train_dtype
    compiles = [True, False] if compile == "auto" else [bool(compile)]
    fallback = (fallback_dtype, False if compile == "auto" else bool(compile))
    every = [(d, c) for d in dtypes for c in compiles]
    every.sort(key=lambda dc: (not dc[1], dc[0] != "bfloat16"))  # compiled bf16 first
    return [dc for dc in every if dc != ("float32", False)], fallback


def _label(candidate):
    dtype, compiled = candidate
    return f"{dtype}{' compiled' if compiled else ' eager'}"


def probe_candidate(module, candidate, *, input_shape, batch_size, device, timeout):
    """Run one candidate set-up in a child process; its verdict.

    Parameters
    ----------
    module : torch.nn.Module
        The untrained network the fit is about to train (copied, pickled to
        a private temporary folder for the child; never modified).
    candidate : tuple of (str, bool)
        ``(train_dtype, compile)``.
    input_shape : tuple of int
        ``(n_frames, n_mels)`` of one clip's features.
    batch_size : int
    device : str
    timeout : float
        Seconds the child may run, compilation included.

    Returns
    -------
    verdict : dict
        ``outcome`` ("works", "aborted", "timeout", "mismatch", "failed"),
        ``detail``, and the child's measurements when it finished.
    """
    dtype, compiled = candidate
    with tempfile.TemporaryDirectory(prefix="sklearn-sed-probe-") as tmp:
        path = os.path.join(tmp, "module.pt")
        # The network object itself, so that the child runs exactly it; a
        # file this process just wrote to its own private folder.
        torch.save(copy.deepcopy(module).cpu(), path)
        spec = {
            "module": path,
            "dtype": dtype,
            "compile": compiled,
            "input_shape": list(input_shape),
            "batch_size": int(batch_size),
            "device": str(device or "cpu"),
            "steps": PROBE_STEPS,
        }
        env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": compile_threads()}
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                _child_command(),
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {
                "outcome": "timeout",
                "detail": f"no result within {timeout:.0f} s "
                "(SKLEARN_SED_PROBE_TIMEOUT)",
            }
        seconds = time.perf_counter() - started
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:120]
        return {
            "outcome": "aborted",
            "detail": f"killed by {name}" + (f" ({tail})" if tail else ""),
            "probe_seconds": seconds,
        }
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1][:160]
        return {
            "outcome": "failed",
            "detail": f"exit {proc.returncode}: {tail}",
            "probe_seconds": seconds,
        }
    try:
        result = json.loads(lines[-1])
    except ValueError:
        result = None
    fields = ("loss_rel_diff", "grad_rel_diff", "step_seconds")
    if not (
        isinstance(result, dict)
        and all(isinstance(result.get(k), (int, float)) for k in fields)
    ):
        return {
            "outcome": "failed",
            "detail": f"the child printed no verdict: {lines[-1][:160]!r}",
            "probe_seconds": seconds,
        }
    result["probe_seconds"] = seconds
    return {**result, **_agreement(result, dtype)}


def _child_command():
    """Return the command of the probe's child (this interpreter)."""
    return [sys.executable, "-m", "sklearn_sed.training._probe_child"]


def _agreement(result, dtype):
    """Outcome "works" or "mismatch" of a finished child, by :data:`TOLERANCES`."""
    tol = TOLERANCES[dtype]
    loss, grad = result["loss_rel_diff"], result["grad_rel_diff"]
    if not (loss <= tol["loss"] and grad <= tol["grad"]):  # NaN fails too
        return {
            "outcome": "mismatch",
            "detail": f"loss differs from eager float32 by {loss:.2g} (at most "
            f"{tol['loss']:g}), gradient by {grad:.2g} (at most {tol['grad']:g})",
        }
    return {
        "outcome": "works",
        "detail": f"loss within {loss:.1g}, gradient within {grad:.1g} of eager "
        "float32",
    }


def compile_threads():
    """``TORCHINDUCTOR_COMPILE_THREADS`` as a compiled fit uses it (default 1)."""
    return os.environ.get("TORCHINDUCTOR_COMPILE_THREADS", "1")


def use_one_compile_thread():
    """Make this process's Inductor compile with :func:`compile_threads`.

    Inductor reads the variable when its configuration is imported; the
    configuration is set as well, for a process that imported it already.
    """
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    with contextlib.suppress(Exception):  # no Inductor in this build
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = int(compile_threads())


def choose_training_path(
    module, *, compile, train_dtype, input_shape, batch_size, device="cpu"
):
    """Resolve ``"auto"`` settings to the fastest set-up proven safe here.

    Parameters
    ----------
    module : torch.nn.Module
        The untrained network the fit will train.
    compile : bool or "auto"
    train_dtype : {"float32", "bfloat16", "auto"}
    input_shape : tuple of int
        ``(n_frames, n_mels)`` of one clip's features.
    batch_size : int
        Clips per training batch (the compiled network trains full batches
        only; a partial last batch and every forward pass outside training
        run the plain network).
    device : str, default="cpu"

    Returns
    -------
    path : TrainingPath
        Concrete ``train_dtype`` and ``compile``, with the reason.
    """
    candidates, fallback = _candidates(compile, train_dtype, device)
    if compile != "auto" and train_dtype != "auto":
        return TrainingPath(fallback[0], fallback[1], "set explicitly")
    if not probe_enabled():
        return TrainingPath(
            *fallback, f"{_label(fallback)}: the probe is off (SKLEARN_SED_PROBE)"
        )
    if not candidates:
        return TrainingPath(*fallback, f"{_label(fallback)}: nothing faster to try")
    timeout = float(os.environ.get("SKLEARN_SED_PROBE_TIMEOUT", DEFAULT_TIMEOUT))
    verdicts = []
    for candidate in candidates:
        key, fields = _cache_key(
            module,
            input_shape=input_shape,
            batch_size=batch_size,
            device=device,
            candidate=candidate,
        )
        verdict = _read_verdict(key)
        cached = verdict is not None
        if verdict is None:
            verdict = probe_candidate(
                module,
                candidate,
                input_shape=input_shape,
                batch_size=batch_size,
                device=device,
                timeout=timeout,
            )
            verdict = {**verdict, "key": key, "fields": fields}
            _write_verdict(key, verdict)
        verdicts.append({**verdict, "candidate": list(candidate), "cached": cached})
    return _decide(verdicts, fallback)


def _decide(verdicts, fallback):
    """Pick the fastest working candidate, else the fallback; say why."""
    working = [v for v in verdicts if v["outcome"] == "works"]
    fallback_seconds = None
    for v in verdicts:
        if tuple(v["candidate"]) == fallback and v["outcome"] == "works":
            fallback_seconds = v["step_seconds"]
    if fallback_seconds is None and working:
        if fallback == ("float32", False):
            fallback_seconds = statistics.median(
                v["eager_float32_step_seconds"] for v in working
            )
    best = None
    for v in sorted(working, key=lambda v: v["step_seconds"]):
        if tuple(v["candidate"]) == fallback:
            continue
        if fallback_seconds is None or (
            v["step_seconds"] * MIN_SPEEDUP <= fallback_seconds
        ):
            best = v
            break
        v["outcome"], v["detail"] = (
            "slower",
            (
                f"{v['step_seconds'] * 1e3:.0f} ms a step against "
                f"{fallback_seconds * 1e3:.0f} ms"
            ),
        )
    notes = "; ".join(
        f"{_label(v['candidate'])} {v['outcome']}"
        + ("" if v["outcome"] == "works" else f" ({v['detail']})")
        for v in verdicts
    )
    if best is not None:
        speedup = (
            f", {fallback_seconds / best['step_seconds']:.2f}x {_label(fallback)}"
            if fallback_seconds
            else ""
        )
        return TrainingPath(
            best["candidate"][0],
            bool(best["candidate"][1]),
            f"{_label(best['candidate'])}{speedup} (probed: {notes})",
            tuple(verdicts),
        )
    return TrainingPath(
        *fallback, f"{_label(fallback)} (probed: {notes})", tuple(verdicts)
    )
