"""skorch's own callbacks work with PseudoLabelSED as with any skorch net.

Both training stages run in one skorch training run (the stages and the
relabelling are the PseudoLabeling callback), so ``on_train_begin`` and
``on_train_end`` fire once per fit.
"""

import numpy as np
import pytest
import torch
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    LoadInitState,
    LRScheduler,
    ProgressBar,
)

from sklearn_sed import PseudoLabelSED
from tests.conftest import FAST_SED

PARAMS = dict(FAST_SED, n_filters=2, max_epochs=3, max_iter=2, batch_size=8)


@pytest.fixture(scope="module")
def data(tiny_dataset):
    d = tiny_dataset
    return d["F"][:12], d["y_weak"][:12], d["y_strong"][:12]


class _TrainEvents(Callback):
    def initialize(self):
        self.events = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.events.append("begin")

    def on_train_end(self, net, **kwargs):
        self.events.append("end")


def test_both_stages_run_in_one_skorch_training(data):
    spy = _TrainEvents()
    sed = PseudoLabelSED(**PARAMS, callbacks=[spy]).fit(*data)
    assert spy.events == ["begin", "end"]
    stages = sed.net_.history[:, "stage"]
    assert stages == [1, 1, 1, 2, 2]
    assert sed.n_iter_ == 2
    # The fitted model does not keep the training data alive.
    assert dict(sed.net_.callbacks_)["pseudo_labeling"].X is None


def test_early_stopping_stops_the_fit(data):
    """A rate of 1e-9 cannot lower the loss: EarlyStopping(patience=1) ends the
    fit after two epochs instead of running all five."""
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=1e-3)
    sed = PseudoLabelSED(**{**PARAMS, "lr": 1e-9}, callbacks=[stop]).fit(*data)
    assert len(sed.net_.history) == 2
    assert sed.n_iter_ == 0  # stopped in stage 1


def test_lr_scheduler_sees_one_fit(data):
    """StepLR halves the rate every epoch across both stages: the scheduler
    is made once and steps five times."""
    sched = LRScheduler(policy=torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    sed = PseudoLabelSED(**{**PARAMS, "lr": 0.1}, callbacks=[sched]).fit(*data)
    lrs = sed.net_.history[:, "event_lr"]
    np.testing.assert_allclose(lrs, [0.1 * 0.5**k for k in range(5)])


def test_epoch_scoring_and_progress_bar_run(data, capsys):
    def n_clips(net, X, y):
        return float(len(X))

    scoring = EpochScoring(n_clips, on_train=True, name="n_clips", use_caching=False)
    sed = PseudoLabelSED(**PARAMS, callbacks=[scoring, ProgressBar()]).fit(*data)
    assert sed.net_.history[:, "n_clips"] == [12.0] * 5


def test_checkpoint_and_load_init_state_continue_a_fit(data, tmp_path):
    """skorch's Checkpoint keeps the best epoch's weights; LoadInitState makes
    a second fit start from them with the history continued."""
    cp = Checkpoint(monitor="train_loss_best", dirname=str(tmp_path / "cp"))
    first = PseudoLabelSED(**PARAMS, callbacks=[cp]).fit(*data)
    best = int(np.argmin(first.net_.history[:, "train_loss"])) + 1
    assert first.net_.history[best - 1, "event_cp"] is True
    saved = torch.load(tmp_path / "cp" / "params.pt", weights_only=True)
    resumed = PseudoLabelSED(
        **{**PARAMS, "max_epochs": 1, "max_iter": 0},
        callbacks=[LoadInitState(cp)],
    ).fit(*data)
    assert len(resumed.net_.history) == best + 1  # the best epoch's history + 1
    assert set(saved) == set(resumed.net_.module_.state_dict())


def test_verbose_two_shows_a_progress_bar_within_epochs(tiny_dataset, capsys):
    """Check verbose=2 adds skorch's ProgressBar (batches within each epoch),
    and verbose=0 and 1 do not."""
    from skorch.callbacks import ProgressBar

    from sklearn_sed import PseudoLabelSED
    from tests.conftest import FAST_SED

    d = tiny_dataset
    for verbose, wanted in ((0, False), (1, False), (2, True)):
        capsys.readouterr()
        sed = PseudoLabelSED(**{**FAST_SED, "verbose": verbose})
        sed.fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
        bars = [cb for _, cb in sed.net_.callbacks_ if isinstance(cb, ProgressBar)]
        assert bool(bars) is wanted
        err = capsys.readouterr().err
        assert ("it/s" in err or "s/it" in err) is wanted
