"""The accelerator run's scripts work end to end on the CPU (tiny settings).

``benchmarks/gpu_table1.py train --tiny`` and ``score`` on a pack built here
from random maps (the real pack needs the benchmark data), and
``benchmarks/gpu_speed.py --check``. Nothing here needs a GPU: this is the
check that the one command sent to an accelerator will not fail on a
mistake of ours.
"""

import json
import lzma
import os
import subprocess
import sys

import numpy as np
import pytest

from sklearn_sed.datasets import DESED_CLASSES

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "benchmarks")


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A pack as ``gpu_table1.py pack`` writes it, of 48 + 8 random maps."""
    folder = tmp_path_factory.mktemp("pack")
    rng = np.random.default_rng(0)
    n_train, n_valid = 48, 8

    def events(k):
        c = DESED_CLASSES[k % len(DESED_CLASSES)]
        return [[1.0 + k % 3, 4.0 + k % 4, c]]

    y_strong = [events(k) if k % 2 == 0 else None for k in range(n_train)]
    y_weak = [[DESED_CLASSES[k % len(DESED_CLASSES)]] for k in range(n_train)]
    meta = {
        "settings": {
            "epochs": 3,
            "max_iter": 1,
            "delta": 0.1,
            "pseudo_negatives": "all",
            "stage2_weighting": "paper",
            "n_filters": 16,
            "n_blocks": 2,
            "crnn_filters": 32,
            "lr": 0.002,
            "batch_size": 16,
            "time_shift": 0.3,
            "freq_mask": 8,
            "ema_decay": None,
            "train_dtype": "auto",
        },
        "y_weak": y_weak,
        "y_strong": y_strong,
        "y_valid": [events(k) for k in range(n_valid)],
        "max_quantisation_error": 0.002,
    }
    with open(folder / "meta.json", "w") as f:
        json.dump(meta, f)
    q = {
        "train": rng.integers(0, 256, (n_train, 1024, 64), dtype=np.uint8),
        "valid": rng.integers(0, 256, (n_valid, 1024, 64), dtype=np.uint8),
    }
    with lzma.open(folder / "features.npz.xz", "wb", preset=0) as f:
        np.savez(f, **q)
    return folder


def test_accelerator_training_step_runs_tiny_on_the_cpu_and_scores_here(pack, tmp_path):
    out = tmp_path / "out"
    _run(
        "gpu_table1.py", "train", "--pack", str(pack), "--out", str(out),
        "--tiny", "--seeds", "0", "--train-dtype", "float32",
        cwd=SCRIPTS,
    )  # fmt: skip
    files = sorted(os.listdir(out))
    assert files == ["frames.npz", "results.json"]  # within the 8 files back
    record = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in record["runs"]] == ["crnn", "resnet", "resnet_pl"]
    frames = np.load(out / "frames.npz")
    assert frames["resnet_s0"].shape[0] == 8
    text = _run(
        "gpu_table1.py", "score", "--pack", str(pack), "--results", str(out),
        "--data", "", "--docs", "",
        cwd=SCRIPTS,
    )  # fmt: skip
    assert "ResNet with pseudo label (proposed)" in text
    assert "event-based F1" in text


def test_accelerator_speed_script_runs_its_check_on_the_cpu(tmp_path):
    out = tmp_path / "speed.json"
    _run("gpu_speed.py", "--check", "--out", str(out), cwd=SCRIPTS)
    record = json.loads(out.read_text())
    for key in ("bf16_matmul_tflops", "forward", "train_clips_per_s", "inference"):
        assert "error" not in str(record[key]), record[key]


def test_lever_sweep_runs_tiny_on_the_cpu_and_writes_its_table(pack, tmp_path):
    """``gpu_sweep.py --tiny`` trains and scores each configuration (both
    clip-gating settings), and ``--report`` writes the table into a page."""
    out = tmp_path / "out"
    _run(
        "gpu_sweep.py", "--pack", str(pack), "--out", str(out), "--tiny",
        "--workers", "1", "--budget", "3600",  # no cut on a busy machine
        cwd=SCRIPTS,
    )  # fmt: skip
    record = json.loads((out / "sweep.json").read_text())
    runs = {r["name"]: r for r in record["runs"]}
    assert sorted(runs) == ["PL, mixup + gating", "recipe"]
    for r in runs.values():
        assert 0.0 <= r["event_f1"] <= 1.0
        assert r["other_gating"]["clip_gating"] is not r["overrides"].get(
            "clip_gating", False
        )
    page = tmp_path / "page.md"
    page.write_text(
        "before\n<!-- gpu_sweep_fa start -->\n<!-- gpu_sweep_fa end -->\nafter\n"
    )
    _run(
        "gpu_sweep.py",
        "--report",
        str(out / "sweep.json"),
        "--docs",
        str(page),
        cwd=SCRIPTS,
    )
    text = page.read_text()
    assert "| recipe | resnet | 0 |" in text
    assert "Levers on top of FilterAugment" in text
    assert text.endswith("after\n")


def test_every_sweep_overrides_only_settings_that_reproduce_table1_has():
    """A misspelt override would silently train the recipe under a new
    name: every sweep's overrides must be settings of reproduce_table1.py."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import gpu_sweep
        from reproduce_table1 import build_parser
    finally:
        sys.path.remove(str(SCRIPTS))
    settings = vars(build_parser().parse_args([]))
    assert {"pseudo_hysteresis", "weak_disjoint"} <= set(gpu_sweep.SWEEPS)
    assert set(gpu_sweep.HEADINGS) == set(gpu_sweep.SWEEPS)
    for configs, section in gpu_sweep.SWEEPS.values():
        assert section.startswith("gpu_sweep")
        for name, variant, seeds, overrides in configs:
            assert variant in ("resnet", "resnet_pl", "crnn"), name
            assert len(seeds) > 0, name
            assert set(overrides) <= set(settings), (name, overrides)
