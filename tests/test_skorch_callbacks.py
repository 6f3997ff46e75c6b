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

from sklearn_sed import Decoder, PseudoLabelSchedule, PseudoLabelSED
from tests.conftest import FAST_SED

PARAMS = dict(
    FAST_SED,
    n_filters=2,
    max_epochs=3,
    pseudo_labels=PseudoLabelSchedule(max_iter=2),
    batch_size=8,
)


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
    # Both stages are one skorch run: stopping in stage 1 ends stage 2 too,
    # and the fit says so (it was silent).
    with pytest.warns(UserWarning, match="stage 2 did not run"):
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
    capsys.readouterr()
    sed = PseudoLabelSED(**PARAMS, callbacks=[scoring, ProgressBar()]).fit(*data)
    assert sed.net_.history[:, "n_clips"] == [12.0] * 5
    # The bar ran: tqdm opened a bar of the 2 training batches (12 clips,
    # batch 8) in every one of the 5 epochs.
    bar = capsys.readouterr().err
    assert bar.count("| 0/2 [") >= 5


def test_checkpoint_and_load_init_state_continue_a_fit(data, tmp_path):
    """skorch's Checkpoint keeps the best epoch's weights; LoadInitState makes
    a second fit start from them with the history continued."""
    cp = Checkpoint(monitor="train_loss_best", dirname=str(tmp_path / "cp"))
    first = PseudoLabelSED(**PARAMS, callbacks=[cp]).fit(*data)
    best = int(np.argmin(first.net_.history[:, "train_loss"])) + 1
    assert first.net_.history[best - 1, "event_cp"] is True
    saved = torch.load(tmp_path / "cp" / "params.pt", weights_only=True)
    resumed = PseudoLabelSED(
        **{**PARAMS, "max_epochs": 1, "pseudo_labels": PseudoLabelSchedule(max_iter=0)},
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


def test_inference_runs_through_skorchs_loop_and_infer_hook(
    tiny_dataset, fitted_sed, monkeypatch
):
    """Check prediction uses skorch's evaluation_step (no loop of our own),
    gives the module's own outputs, and autocasts only when asked."""
    import copy

    from sklearn_sed.training.net import SEDNet

    d = tiny_dataset
    calls = []
    step = SEDNet.evaluation_step

    def spy(self, batch, training=False):
        calls.append(training)
        return step(self, batch, training=training)

    monkeypatch.setattr(SEDNet, "evaluation_step", spy)
    X = d["F_test"][:3]
    frames = fitted_sed.predict_frames(X)
    assert len(calls) == 3  # one clip per forward pass on a CPU
    module = copy.deepcopy(fitted_sed.net_.module_).eval()
    with torch.no_grad():
        by_hand = module(torch.as_tensor(X))[0].numpy()
    np.testing.assert_allclose(frames, by_hand, atol=1e-6)
    assert calls == [False] * 3
    bf16 = copy.deepcopy(fitted_sed).set_params(inference_dtype="bfloat16")
    low = bf16.predict_frames(X)
    assert low.dtype == np.float32
    assert 0 < np.abs(low - frames).max() < 0.05
    assert bf16.net_.inference_dtype == "float32"  # set for the call only


def test_the_net_holds_no_pointer_to_the_estimator(data):
    """Check the skorch net and its callbacks reach the decoding through a
    value object (``net.decoding_``), not through the estimator that owns
    them: no lower layer points back up."""
    from sklearn_sed.decoding.decode import Decoding

    sed = PseudoLabelSED(**PARAMS).fit(*data)
    net = sed.net_
    assert isinstance(net.decoding_, Decoding)
    assert list(net.decoding_.classes) == list(sed.classes_)
    owners = [vars(net), *(vars(cb) for _, cb in net.callbacks_)]
    assert not any(value is sed for d in owners for value in d.values())


def test_the_nets_decoding_is_the_one_the_fit_tuned(data):
    """Check net.decoding_ after a fit that tunes its post-processing holds the
    tuned per-class settings, not the parameters it was built with."""
    sed = PseudoLabelSED(
        **PARAMS, validation_fraction=0.5, decoder=Decoder(tune=True)
    ).fit(*data)
    decoding = sed.net_.decoding_
    threshold, median, low = sed.decoding_settings()
    np.testing.assert_array_equal(decoding.threshold, threshold)
    np.testing.assert_array_equal(decoding.median_filter_sec, median)
    np.testing.assert_array_equal(decoding.low_threshold, low)
    assert sed.validation_f1_ is not None  # the tuning ran
