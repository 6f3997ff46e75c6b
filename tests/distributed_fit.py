"""Fit PseudoLabelSED data-parallel; run by tests/test_distributed.py.

    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        tests/distributed_fit.py OUT.npz

Every process builds the same tiny data set and fits through an
``accelerate.Accelerator`` on the CPU (gloo); the main process writes the
frame probabilities of the test clips and the pseudo-label record to
``OUT.npz``. ``fit_detector(None, ...)`` is the single-process twin: the
same recipe with the whole global batch in one process.
"""

import json
import sys

import numpy as np
import torch
from torch import nn

from sklearn_sed import PseudoLabelSchedule, PseudoLabelSED
from tests.conftest import make_tiny_dataset

#: Clips per process and per step; the global batch is this x processes.
BATCH = 4


class TinySED(nn.Module):
    """A network without batch norm or dropout: its data-parallel training
    equals one process's exactly (batch norm sees each process's share)."""

    def __init__(self, n_classes):
        super().__init__()
        self.conv = nn.Conv1d(32, 16, 5, padding=2)
        self.out = nn.Linear(16, n_classes)

    def forward(self, x):
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        frames = torch.sigmoid(self.out(h))
        return frames, frames.amax(dim=1)


def data():
    """32 training clips (half weak) and 8 test clips, the same everywhere."""
    d = make_tiny_dataset(32, 8)
    return d["F"], d["y_weak"], d["y_strong"], d["F_test"]


def fit_detector(accelerator, batch_size, F, y_weak, y_strong):
    return PseudoLabelSED(
        TinySED,
        optimizer=torch.optim.SGD,
        lr=0.5,
        batch_size=batch_size,
        max_epochs=3,
        pseudo_labels=PseudoLabelSchedule(max_iter=2, delta=0.2, threshold_start=0.6),
        duration=2.0,
        random_state=0,
        accelerator=accelerator,
        net_params={"iterator_train__shuffle": False},
    ).fit(F, y_weak, y_strong)


def main(out):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    F, y_weak, y_strong, F_test = data()
    sed = fit_detector(accelerator, BATCH, F, y_weak, y_strong)
    frames = sed.predict_frames(F_test)
    # Each process logs the loss of its share; their mean is the batch's.
    loss = torch.as_tensor(sed.net_.history[:, "train_loss"], dtype=torch.float64)
    loss = accelerator.gather(loss[None]).mean(dim=0).numpy()
    if accelerator.is_main_process:
        np.savez(
            out,
            frames=frames,
            world_size=accelerator.num_processes,
            pseudo=json.dumps(sed.pseudo_label_history_),
            loss=loss,
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()  # destroys the process group: a clean exit


if __name__ == "__main__":
    main(sys.argv[1])
