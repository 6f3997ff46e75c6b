"""``benchmarks/gpu_sweep.py --report`` on records written here: no
training, so not a slow test (the sweep itself is in test_gpu_scripts.py)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "benchmarks")


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_sweep_report_gathers_a_sweeps_runs_from_several_records(tmp_path):
    """``--report A B --sweep S`` keeps the runs whose name, variant,
    overrides and seed are a row of S, the first record's where two hold
    the same run, and drops the rest (another sweep's rows, other seeds)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import gpu_sweep
    finally:
        sys.path.remove(str(SCRIPTS))

    def run(name, variant, seed, overrides, f1):
        return {
            "name": name,
            "variant": variant,
            "seed": seed,
            "overrides": overrides,
            "event_f1": f1,
            "segment_f1": f1,
            "other_gating": {"event_f1": f1, "segment_f1": f1},
            "best_epoch": 14,
            "dev_event_f1_per_epoch": [f1 / 2, f1],
            "fit_seconds": 1.0,
        }

    hyst = {"pseudo_low_ratio": 0.25, "stage2_weighting": "keep_strong"}
    first = {
        "sweep": "stage2_rate",
        "device": "gpu",
        "date": "d1",
        "workers": 15,
        "threads": 1,
        "runs": [
            run("recipe", "resnet", 0, {}, 0.20),
            run("restart after epoch 10", "resnet", 0, {"lr_restart_epoch": 10}, 0.5),
            run("PL keep_strong, pseudo_low_ratio 0.25", "resnet_pl", 0, hyst, 0.21),
        ],
    }
    second = {
        "sweep": "pseudo_hysteresis",
        "device": "gpu",
        "date": "d2",
        "workers": 6,
        "threads": 2,
        "only": ["CRNN", "recipe"],
        "runs": [
            run("CRNN", "crnn", 0, {}, 0.22),
            run("recipe", "resnet", 0, {}, 0.99),  # the first record's wins
            run("CRNN", "crnn", 7, {}, 0.99),  # not a seed of the sweep
            run("CRNN", "crnn", 1, {"mixup": 0.5}, 0.99),  # other overrides
        ],
    }
    runs = gpu_sweep.merge_records([first, second], "pseudo_hysteresis")
    assert [(r["name"], r["seed"], r["event_f1"]) for r in runs] == [
        ("recipe", 0, 0.20),
        ("CRNN", 0, 0.22),
        ("PL keep_strong, pseudo_low_ratio 0.25", 0, 0.21),
    ]
    paths = []
    for i, record in enumerate((first, second)):
        paths.append(tmp_path / f"sweep{i}.json")
        paths[-1].write_text(json.dumps(record))
    page = tmp_path / "page.md"
    page.write_text("")
    _run(
        "gpu_sweep.py", "--report", *map(str, paths), "--sweep",
        "pseudo_hysteresis", "--docs", str(page), "--curves",
        str(tmp_path / "curves.png"),
        cwd=SCRIPTS,
    )  # fmt: skip
    text = page.read_text()
    assert "Runs from 2 calls" in text
    assert '--only "CRNN" "recipe"' in text
    assert "| CRNN | crnn | 0 | 22.0 |" in text
    assert "restart after epoch 10" not in text
    assert "](curves.png)" in text  # linked relative to the page
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_sweep_report_never_merges_runs_of_other_data_or_packs():
    """weak_disjoint trains the rows of pseudo_hysteresis on other data: a
    record of one never gives runs to the other, nor do two packs mix."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import gpu_sweep
    finally:
        sys.path.remove(str(SCRIPTS))
    run = {"name": "recipe", "variant": "resnet", "seed": 0, "overrides": {}}
    default = {"sweep": "pseudo_hysteresis", "runs": [run]}
    disjoint = {"sweep": "weak_disjoint", "runs": [run]}
    with pytest.raises(ValueError, match="other data"):
        gpu_sweep.merge_records([default], "weak_disjoint")
    with pytest.raises(ValueError, match="other data"):
        gpu_sweep.merge_records([default, disjoint], "pseudo_hysteresis")
    assert gpu_sweep.merge_records([disjoint], "weak_disjoint") == [run]
    with pytest.raises(ValueError, match="different packs"):
        gpu_sweep.merge_records(
            [
                {**default, "pack_created": "2026-11-27 03:56 UTC"},
                {**default, "pack_created": "2026-11-28 10:00 UTC"},
            ],
            "pseudo_hysteresis",
        )
