"""Data-parallel training through accelerate: 2 processes on the CPU (gloo).

The processes split every batch and average their gradients; the loss
normalises by the sample counts of the whole batch, and pseudo labels and
predictions are gathered from all processes. So two processes with batches
of 4 train exactly as one process with batches of 8: same losses, same
pseudo labels, same weights, up to floating-point rounding.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("accelerate", reason="the accelerate extra is not installed")

from tests.distributed_fit import BATCH, data, fit_detector

pytestmark = pytest.mark.slow
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run.npz"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", "2", os.path.join(HERE, "distributed_fit.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    return np.load(out)


@pytest.fixture(scope="module")
def one_process_twin():
    F, y_weak, y_strong, F_test = data()
    sed = fit_detector(None, 2 * BATCH, F, y_weak, y_strong)
    return sed, F_test


def test_two_processes_really_ran(two_process_run):
    assert int(two_process_run["world_size"]) == 2


def test_data_parallel_losses_equal_one_process_with_the_whole_batch(
    two_process_run, one_process_twin
):
    sed, _ = one_process_twin
    np.testing.assert_allclose(
        two_process_run["loss"], sed.net_.history[:, "train_loss"], rtol=1e-4
    )


def test_pseudo_labelling_sees_every_weak_clip_in_every_process(
    two_process_run, one_process_twin
):
    sed, _ = one_process_twin
    history = json.loads(str(two_process_run["pseudo"]))
    assert [h["n_weak"] for h in history] == [16, 16]
    assert any(h["n_pseudo"] > 0 for h in history)
    assert history == sed.pseudo_label_history_


def test_data_parallel_predictions_equal_one_process(two_process_run, one_process_twin):
    sed, F_test = one_process_twin
    np.testing.assert_allclose(
        two_process_run["frames"], sed.predict_frames(F_test), atol=1e-5
    )
