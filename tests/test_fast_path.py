"""``compile="auto"`` / ``train_dtype="auto"``: the training probe.

The probe's child is replaced by small scripts that abort, stall, disagree or
report timings, so that each verdict is checked in seconds; one slow test runs
the real child on a tiny network.
"""

import json
import signal
import sys

import numpy as np
import pytest
import torch

from sklearn_sed import PseudoLabelSED, make_detector
from sklearn_sed.networks import ResNetSED
from sklearn_sed.training import fast_path
from sklearn_sed.training.build import build_module
from sklearn_sed.training.fast_path import choose_training_path
from tests.conftest import FAST_SED


def _child_printing(loss=1e-5, grad=1e-4, seconds=0.5, eager=1.0, log=None):
    """A child command that reports the given agreement and step times."""
    result = json.dumps(
        {
            "loss_rel_diff": loss,
            "grad_rel_diff": grad,
            "step_seconds": seconds,
            "eager_float32_step_seconds": eager,
        }
    )
    count = f"open({str(log)!r}, 'a').write('x');" if log else ""
    return [
        sys.executable,
        "-c",
        f"import sys; sys.stdin.read(); {count} print({result!r})",
    ]


@pytest.fixture
def probe_on(monkeypatch, tmp_path):
    """The probe switched on, with a cache folder of its own and no memo."""
    monkeypatch.setenv("SKLEARN_SED_PROBE", "on")
    monkeypatch.setenv("SKLEARN_SED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fast_path, "_MEMO", {})
    return tmp_path


@pytest.fixture
def module():
    return build_module(ResNetSED, 2, n_filters=4, n_blocks=1)


def _choose(module, **kw):
    settings = dict(
        compile="auto", train_dtype="float32", input_shape=(64, 16), batch_size=4
    )
    return choose_training_path(module, **{**settings, **kw})


@pytest.mark.parametrize("sig", [signal.SIGABRT, signal.SIGSEGV])
def test_a_child_killed_by_a_signal_yields_eager_and_names_the_signal(
    probe_on, module, monkeypatch, sig
):
    monkeypatch.setattr(
        fast_path,
        "_child_command",
        lambda: [sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(sig)})"],
    )
    path = _choose(module)
    assert (path.train_dtype, path.compile) == ("float32", False)
    assert path.probes[0]["outcome"] == "aborted"
    assert sig.name in path.reason


def test_a_mismatch_with_eager_float32_yields_eager(probe_on, module, monkeypatch):
    monkeypatch.setattr(
        fast_path, "_child_command", lambda: _child_printing(loss=0.5, seconds=0.1)
    )
    path = _choose(module)
    assert path.compile is False
    assert path.probes[0]["outcome"] == "mismatch"
    assert "loss differs from eager float32 by 0.5" in path.reason


def test_nan_from_the_candidate_is_a_mismatch(probe_on, module, monkeypatch):
    monkeypatch.setattr(
        fast_path, "_child_command", lambda: _child_printing(grad=float("nan"))
    )
    assert _choose(module).probes[0]["outcome"] == "mismatch"


def test_a_child_past_its_time_limit_yields_eager(probe_on, module, monkeypatch):
    monkeypatch.setenv("SKLEARN_SED_PROBE_TIMEOUT", "1")
    monkeypatch.setattr(
        fast_path,
        "_child_command",
        lambda: [sys.executable, "-c", "import time; time.sleep(30)"],
    )
    path = _choose(module)
    assert path.compile is False
    assert path.probes[0]["outcome"] == "timeout"


def test_a_candidate_that_works_and_is_faster_is_chosen(probe_on, module, monkeypatch):
    monkeypatch.setattr(
        fast_path, "_child_command", lambda: _child_printing(seconds=0.4, eager=1.0)
    )
    path = _choose(module)
    assert (path.train_dtype, path.compile) == ("float32", True)
    assert "2.50x float32 eager" in path.reason


def test_a_candidate_that_is_not_faster_is_not_chosen(probe_on, module, monkeypatch):
    monkeypatch.setattr(
        fast_path, "_child_command", lambda: _child_printing(seconds=0.99, eager=1.0)
    )
    path = _choose(module)
    assert path.compile is False
    assert "slower" in path.reason


def test_bfloat16_is_tried_only_where_the_device_computes_it(
    probe_on, module, monkeypatch
):
    monkeypatch.setattr(
        fast_path, "_child_command", lambda: _child_printing(seconds=0.2, eager=1.0)
    )
    monkeypatch.setattr(fast_path, "has_native_bfloat16", lambda device: False)
    path = _choose(module, train_dtype="auto")
    assert [p["candidate"] for p in path.probes] == [["float32", True]]
    monkeypatch.setattr(fast_path, "has_native_bfloat16", lambda device: True)
    path = _choose(module, train_dtype="auto", batch_size=8)
    assert [p["candidate"] for p in path.probes] == [
        ["bfloat16", True],
        ["float32", True],
        ["bfloat16", False],
    ]
    assert path.train_dtype == "bfloat16"


def test_the_verdict_is_cached_and_a_new_shape_or_torch_probes_again(
    probe_on, module, monkeypatch
):
    log = probe_on / "calls.txt"
    monkeypatch.setattr(fast_path, "_child_command", lambda: _child_printing(log=log))
    _choose(module)
    monkeypatch.setattr(fast_path, "_MEMO", {})  # a new process: the file
    again = _choose(module)
    assert log.read_text() == "x"
    assert again.probes[0]["cached"] is True
    _choose(module, batch_size=5)  # another batch shape
    _choose(module, input_shape=(128, 16))  # another input shape
    assert log.read_text() == "xxx"
    monkeypatch.setattr(fast_path.torch, "__version__", "9.9.9")
    _choose(module)
    assert log.read_text() == "xxxx"
    files = list((probe_on / "cache").glob("probe-*.json"))
    assert len(files) == 4


def test_a_damaged_cache_file_probes_again(probe_on, module, monkeypatch):
    log = probe_on / "calls.txt"
    monkeypatch.setattr(fast_path, "_child_command", lambda: _child_printing(log=log))
    _choose(module)
    for f in (probe_on / "cache").glob("probe-*.json"):
        f.write_text("{not json")
    monkeypatch.setattr(fast_path, "_MEMO", {})
    assert _choose(module).compile is True
    assert log.read_text() == "xx"


def test_the_probe_off_trains_eagerly_without_a_child(module, monkeypatch):
    monkeypatch.setenv("SKLEARN_SED_PROBE", "off")
    monkeypatch.setattr(fast_path, "_child_command", lambda: pytest.fail("probed"))
    path = _choose(module, train_dtype="auto")
    assert (path.train_dtype, path.compile) == ("float32", False)
    assert "SKLEARN_SED_PROBE" in path.reason


def test_a_default_fit_never_compiles_in_process_without_a_verdict(
    probe_on, monkeypatch, tiny_dataset
):
    """Check a recipe's fit (compile="auto") whose probe aborted trains
    eagerly, warns naming the signal, and never calls torch.compile."""
    d = tiny_dataset
    monkeypatch.setattr(
        fast_path,
        "_child_command",
        lambda: [sys.executable, "-c", "import os; os.abort()"],
    )
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled"))
    sed = make_detector("cpu", **{**FAST_SED, "n_filters": 4})
    assert sed.compile == "auto"
    with pytest.warns(UserWarning, match="eager.*SIGABRT"):
        sed.fit(d["F"][:32], d["y_weak"][:32], d["y_strong"][:32])
    assert sed.training_path_.compile is False
    assert "compile__dynamic" not in sed.net_.get_params()
    assert np.all(np.isfinite(sed.net_.history[:, "train_loss"]))


def test_a_fit_compiles_only_the_probed_training_batches(
    probe_on, monkeypatch, tiny_dataset
):
    """Check a fit whose probe found compilation faster compiles once and
    runs the compiled network only on full training batches: a partial last
    batch, validation and prediction run the plain network."""
    d = tiny_dataset
    monkeypatch.setattr(fast_path, "_child_command", lambda: _child_printing())
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

        def forward(self, x):
            calls.append((self.training, len(x)))
            return self._orig_mod(x)

    monkeypatch.setattr(torch, "compile", lambda module, **kw: Recorder(module))
    sed = PseudoLabelSED(**{**FAST_SED, "batch_size": 12}, compile="auto")
    sed.fit(d["F"][:32], d["y_weak"][:32], d["y_strong"][:32])  # 12 + 12 + 8
    assert sed.training_path_.compile is True
    assert calls
    assert all(training and n == 12 for training, n in calls)
    assert not hasattr(sed.net_.module_, "_orig_mod")  # the plain network kept
    sed.predict_frames(d["F"][:3])
    assert all(n == 12 for _, n in calls)


@pytest.mark.slow
def test_the_real_probe_decides_without_harming_this_process(probe_on, module):
    """Run the real child on a tiny network, compiled: whatever Inductor does
    on this CPU (work, abort, mismatch), this process lives and gets a
    concrete set-up with a reason."""
    path = _choose(module)
    verdict = path.probes[0]
    assert verdict["outcome"] in {"works", "slower", "aborted", "mismatch", "failed"}
    assert path.train_dtype == "float32"
    assert path.compile is (verdict["outcome"] == "works")
    if verdict["outcome"] in {"works", "slower"}:
        assert verdict["loss_rel_diff"] <= fast_path.TOLERANCES["float32"]["loss"]
        assert verdict["step_seconds"] > 0


def test_auto_is_refused_where_only_explicit_values_make_sense(tiny_dataset):
    d = tiny_dataset
    with pytest.raises(ValueError, match="train_dtype"):
        PseudoLabelSED(**FAST_SED, train_dtype="fast").fit(
            d["F"][:8], d["y_weak"][:8], d["y_strong"][:8]
        )


def test_a_child_that_prints_no_verdict_yields_eager(probe_on, module, monkeypatch):
    monkeypatch.setattr(
        fast_path,
        "_child_command",
        lambda: [sys.executable, "-c", "print('compiled fine, I think')"],
    )
    path = _choose(module)
    assert path.compile is False
    assert path.probes[0]["outcome"] == "failed"
    assert "printed no verdict" in path.reason


def test_a_memory_cached_fit_resolves_auto_and_records_the_set_up(
    tiny_dataset, tmp_path
):
    """Check compile="auto" with ``memory`` trains (the cached training gets
    the input shape the probe needs) and keeps ``training_path_``, on a
    cache miss and on a hit."""
    d = tiny_dataset
    for _ in range(2):  # miss, then hit
        sed = PseudoLabelSED(**FAST_SED, compile="auto", memory=str(tmp_path))
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
        assert sed.training_path_.compile is False
        assert "SKLEARN_SED_PROBE" in sed.training_path_.reason


def test_a_limited_instruction_set_probes_again(probe_on, module, monkeypatch):
    # ATEN_CPU_CAPABILITY=avx2 runs ATen and Inductor's code on AVX2 paths:
    # a verdict probed on AVX-512 paths says nothing of them.
    for name in fast_path.ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    log = probe_on / "calls.txt"
    monkeypatch.setattr(fast_path, "_child_command", lambda: _child_printing(log=log))
    _choose(module)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    limited = _choose(module)
    assert log.read_text() == "xx"
    assert limited.probes[0]["cached"] is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    _choose(module)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(fast_path, "_MEMO", {})
    assert _choose(module).probes[0]["cached"] is True  # the unlimited verdict
    assert log.read_text() == "xxx"


@pytest.mark.parametrize(
    ("capability", "onednn", "native"),
    [
        ("AVX512", None, True),
        ("AVX512", "AVX512_CORE_BF16", True),
        ("AVX512", "AVX512_CORE_AMX", True),
        ("AVX512", "AVX2", False),
        ("AVX512", "AVX512_CORE_VNNI", False),
        ("AVX2", None, False),
    ],
)
def test_bfloat16_is_native_only_where_the_environment_leaves_it_on(
    capability, onednn, native, monkeypatch
):
    monkeypatch.setattr(fast_path, "_cpu_flags", lambda: ("CPU", "avx2 avx512_bf16"))
    monkeypatch.setattr(fast_path, "_aten_capability", lambda: capability)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if onednn is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    assert fast_path.has_native_bfloat16("cpu") is native


def test_bfloat16_is_not_native_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(fast_path, "_cpu_flags", lambda: ("CPU", "avx2 fma"))
    monkeypatch.setattr(fast_path, "_aten_capability", lambda: "AVX2")
    assert fast_path.has_native_bfloat16("cpu") is False
