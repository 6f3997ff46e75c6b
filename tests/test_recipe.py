"""The localisation recipe: bfloat16 training, weight averaging, the learning
rate schedule, validation (best epoch, per-class tuning) and named recipes."""

import itertools

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_sed import PseudoLabelSED, make_detector
from sklearn_sed.decoding.tuning import (
    FINAL_MEDIAN_FILTER_GRID,
    LOW_RATIO_GRID,
    tune_postprocessing,
)
from sklearn_sed.labels import events_to_frames
from sklearn_sed.recipes import RECIPES, make_teacher
from sklearn_sed.training.callbacks import PseudoLabelQuality, WarmupCosineLR
from tests.conftest import FAST_SED

SMALL = dict(FAST_SED, n_filters=4, max_epochs=3, max_iter=2, batch_size=8)


def _split(d, n_val=8):
    """Training clips and strong validation clips of the tiny dataset."""
    strong = [i for i, s in enumerate(d["y_strong"]) if s is not None]
    val = strong[:n_val]
    train = [i for i in range(len(d["F"])) if i not in val]
    return (
        d["F"][train],
        [d["y_weak"][i] for i in train],
        [d["y_strong"][i] for i in train],
        d["F"][val],
        [d["y_strong"][i] for i in val],
    )


def test_bfloat16_training_gives_finite_loss_and_float32_outputs(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(**SMALL, train_dtype="bfloat16").fit(
        d["F"][:24], d["y_weak"][:24], d["y_strong"][:24]
    )
    losses = sed.net_.history[:, "train_loss"]
    assert len(losses) == SMALL["max_epochs"] + SMALL["max_iter"]
    assert np.all(np.isfinite(losses))
    frames = sed.predict_frames(d["F_test"][:4])
    assert frames.dtype == np.float32
    assert np.all((frames >= 0) & (frames <= 1))


def test_bfloat16_training_differs_from_float32_training(tiny_dataset):
    """The option reaches the forward pass (it is not silently ignored)."""
    d = tiny_dataset
    args = (d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    p32 = PseudoLabelSED(**SMALL).fit(*args).predict_frames(d["F_test"][:2])
    p16 = (
        PseudoLabelSED(**SMALL, train_dtype="bfloat16")
        .fit(*args)
        .predict_frames(d["F_test"][:2])
    )
    assert np.all(np.isfinite(p16))
    assert not np.allclose(p32, p16)


def test_ema_model_is_what_fit_leaves(tiny_dataset):
    """With ema_decay the fitted weights are the running average, not the last
    weights: decay 0 gives the last weights exactly."""
    d = tiny_dataset
    args = (d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    plain = PseudoLabelSED(**SMALL).fit(*args)
    ema0 = PseudoLabelSED(**SMALL, ema_decay=0.0).fit(*args)
    ema9 = PseudoLabelSED(**SMALL, ema_decay=0.9).fit(*args)
    X = d["F_test"][:3]
    np.testing.assert_allclose(
        plain.predict_frames(X), ema0.predict_frames(X), atol=1e-6
    )
    assert not np.allclose(plain.predict_frames(X), ema9.predict_frames(X))


def test_warmup_cosine_factor_rises_then_falls_to_zero():
    f = WarmupCosineLR.factor
    assert f(0.0, 10, 2) == 0.0
    assert f(1.0, 10, 2) == pytest.approx(0.5)
    assert f(2.0, 10, 2) == pytest.approx(1.0)
    assert f(6.0, 10, 2) == pytest.approx(0.5)
    assert f(10.0, 10, 2) == pytest.approx(0.0)
    assert f(5.0, 10, 0) == pytest.approx(0.5)


def test_restarted_cosine_ends_stage_1_at_zero_and_restarts_at_its_scale():
    f = WarmupCosineLR.factor
    # warm-up 1, first cosine over epochs 1-4, second over 4-8 from 0.5
    assert f(0.5, 8, 1, 4, 0.5) == pytest.approx(0.5)
    assert f(2.5, 8, 1, 4, 0.5) == pytest.approx(0.5)
    assert f(4.0 - 1e-9, 8, 1, 4, 0.5) == pytest.approx(0.0)
    assert f(4.0, 8, 1, 4, 0.5) == pytest.approx(0.5)
    assert f(6.0, 8, 1, 4, 0.5) == pytest.approx(0.25)
    assert f(8.0, 8, 1, 4, 0.5) == pytest.approx(0.0)
    assert f(6.0, 8, 1, None, 0.5) == f(6.0, 8, 1)  # no restart: one cosine


def test_restarted_schedule_gives_stage_2_a_rate_of_its_own(tiny_dataset):
    d = tiny_dataset
    kw = dict(SMALL, lr_schedule="cosine", warmup_epochs=1)
    one = PseudoLabelSED(**kw).fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    two = PseudoLabelSED(**kw, lr_restart_epoch=3, lr_restart_scale=0.5).fit(
        d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    )
    lrs_one, lrs_two = one.net_.history[:, "lr"], two.net_.history[:, "lr"]
    assert len(lrs_two) == 5  # 3 stage-1 epochs + 2 iterations
    # The last batch of stage 1 is near 0, the first of stage 2 near lr / 2.
    assert lrs_two[2] < 0.05 * two.lr
    assert lrs_two[3] > lrs_one[3]
    assert lrs_two[3] < 0.5 * two.lr


def test_cosine_schedule_lowers_the_rate_over_both_stages(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(**SMALL, lr_schedule="cosine", warmup_epochs=1).fit(
        d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    )
    lrs = sed.net_.history[:, "lr"]
    assert len(lrs) == 5
    assert lrs[0] < sed.lr  # still warming up in the first epoch
    after = lrs[1:]
    assert all(a > b for a, b in itertools.pairwise(after))
    assert lrs[-1] < 0.1 * sed.lr


def test_validation_keeps_the_best_epoch_and_tunes_each_class(tiny_dataset):
    d = tiny_dataset
    F, y_weak, y_strong, F_val, y_val = _split(d)
    sed = PseudoLabelSED(**SMALL, tune_postprocessing=True).fit(
        F, y_weak, y_strong, X_val=F_val, y_val=y_val
    )
    scores = sed.net_.history[:, "valid_event_f1"]
    assert 1 <= sed.best_epoch_ <= len(scores)
    assert scores[sed.best_epoch_ - 1] == max(scores)
    assert sed.threshold_.shape == sed.median_filter_sec_.shape == (2,)
    # The tuned settings are the ones decoding uses: the validation F1 is
    # reproduced by scoring the validation clips.
    assert sed.score(F_val, y_val) == pytest.approx(sed.validation_f1_)
    # The final tuning is the wider grid (long medians, hysteresis), which
    # holds the monitoring grid: it can only raise the best epoch's score.
    thr, med, low, f1 = tune_postprocessing(
        *sed._forward_all(F_val),
        y_val,
        classes=sed.classes_,
        duration=2.0,
        median_filters=FINAL_MEDIAN_FILTER_GRID,
        low_ratios=LOW_RATIO_GRID,
    )
    np.testing.assert_array_equal(thr, sed.threshold_)
    np.testing.assert_array_equal(med, sed.median_filter_sec_)
    np.testing.assert_array_equal(low, sed.low_threshold_)
    assert np.mean(f1) == pytest.approx(sed.validation_f1_)
    assert sed.validation_f1_ >= scores[sed.best_epoch_ - 1] - 1e-9


def test_validation_fraction_holds_out_strong_clips(tiny_dataset):
    d = tiny_dataset
    n_strong = sum(s is not None for s in d["y_strong"][:32])
    sed = PseudoLabelSED(**SMALL, validation_fraction=0.25).fit(
        d["F"][:32], d["y_weak"][:32], d["y_strong"][:32]
    )
    assert sed.n_strong_ == n_strong - round(0.25 * n_strong)
    assert sed.best_epoch_ is not None
    assert sed.validation_f1_ is not None


def test_validation_errors_name_the_fix(tiny_dataset):
    d = tiny_dataset
    with pytest.raises(ValueError, match="X_val and y_val go together"):
        PseudoLabelSED(**SMALL).fit(
            d["F"][:16], d["y_weak"][:16], d["y_strong"][:16], X_val=d["F"][:2]
        )
    with pytest.raises(ValueError, match="y_val"):
        PseudoLabelSED(**SMALL).fit(
            d["F"][:16],
            d["y_weak"][:16],
            d["y_strong"][:16],
            X_val=d["F"][:2],
            y_val=[[]],
        )
    weak_only = [None] * 16
    with pytest.raises(ValueError, match="validation_fraction"):
        PseudoLabelSED(**SMALL, validation_fraction=0.2).fit(
            d["F"][:16], d["y_weak"][:16], weak_only
        )


class _Boom(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 3:
            raise RuntimeError("crash")


def test_resume_with_averaging_and_validation_gives_same_model(tiny_dataset, tmp_path):
    """Checkpoints carry the averaged and the best weights."""
    d = tiny_dataset
    F, y_weak, y_strong, F_val, y_val = _split(d)
    F, y_weak, y_strong = F[:16], y_weak[:16], y_strong[:16]
    params = dict(SMALL, ema_decay=0.5, lr_schedule="cosine", tune_postprocessing=True)
    ref = PseudoLabelSED(**params).fit(F, y_weak, y_strong, X_val=F_val, y_val=y_val)
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(RuntimeError, match="crash"):
        PseudoLabelSED(**params, checkpoint_dir=ckpt, callbacks=[_Boom()]).fit(
            F, y_weak, y_strong, X_val=F_val, y_val=y_val
        )
    resumed = PseudoLabelSED(**params, checkpoint_dir=ckpt).fit(
        F, y_weak, y_strong, X_val=F_val, y_val=y_val
    )
    assert len(resumed.net_.history) == len(ref.net_.history)
    assert resumed.best_epoch_ == ref.best_epoch_
    np.testing.assert_allclose(
        resumed.predict_frames(F_val), ref.predict_frames(F_val), atol=1e-5
    )


def test_pseudo_label_quality_is_recorded_per_iteration(tiny_dataset):
    d = tiny_dataset
    F, y_weak, y_strong = d["F"][:32], d["y_weak"][:32], d["y_strong"][:32]
    n_out = -(-F.shape[1] // 8)  # the ResNet pools time by 8
    truth = np.full((32, n_out, 2), np.nan, np.float32)
    classes = sorted({c for w in y_weak for c in w})
    for i, s in enumerate(y_strong):
        if s is not None:
            truth[i] = events_to_frames(
                s, classes=classes, n_frames=n_out, duration=2.0
            )
    quality = PseudoLabelQuality(truth)
    sed = PseudoLabelSED(
        **dict(SMALL, max_iter=3),
        callbacks=[quality],
    )
    with pytest.warns(UserWarning, match="No clip has strong labels"):
        sed.fit(F, y_weak, [None] * len(F))
    assert [r["iteration"] for r in quality.records_] == [0, 1, 2]
    for rec, hist in zip(quality.records_, sed.pseudo_label_history_, strict=True):
        assert rec["n_pseudo"] == hist["n_pseudo"]
        assert 0.0 <= rec["precision"] <= 1.0
        assert 0.0 <= rec["recall"] <= 1.0


def test_pseudo_label_quality_counts_frames_against_the_truth():
    """Precision, recall and clip agreement on a hand-made case; clips with a
    NaN truth are left out."""
    truth = np.zeros((3, 4, 2), np.float32)
    truth[0, 0:2, 0] = 1  # clip 0: class 0 in frames 0-1
    truth[1, 1:4, 1] = 1  # clip 1: class 1 in frames 1-3
    truth[2] = np.nan  # clip 2: unknown
    pseudo = np.zeros((3, 4, 2), np.float32)
    pseudo[0, 1:3, 0] = 1  # 1 of 2 frames right, 1 wrong
    pseudo[1, 1:3, 0] = 1  # wrong class in clip 1
    pseudo[2, :, :] = 1  # ignored
    quality = PseudoLabelQuality(truth).initialize()
    quality.on_pseudo_labels(
        None, iteration=0, threshold=0.75, clip_index=[0, 1, 2], frame_labels=pseudo
    )
    (rec,) = quality.records_
    assert rec["n_pseudo"] == 3
    assert rec["precision"] == pytest.approx(1 / 4)  # 1 true of 4 labelled
    assert rec["recall"] == pytest.approx(1 / 5)  # 1 found of 5 true
    assert rec["clip_precision"] == pytest.approx(1 / 2)  # clip 0 only


def test_make_detector_merges_recipe_and_overrides():
    sed = make_detector("cpu", max_epochs=2, n_filters=4)
    assert sed.max_epochs == 2
    assert sed.n_filters == 4
    assert sed.optimizer is torch.optim.Adam
    assert sed.train_dtype == "float32"
    assert sed.compile is False
    assert make_detector("paper").get_params() == PseudoLabelSED().get_params()
    assert set(RECIPES) == {"cpu", "cpu_teacher", "paper"}
    with pytest.raises(ValueError, match="recipe must be one of"):
        make_detector("gpu")


def test_validation_fraction_keeps_a_feature_store_on_disk(tiny_dataset, tmp_path):
    """Holding out validation clips of a store gives the same model as of the
    same array, and the training rows are still read lazily from disk."""
    from sklearn_sed import LogMelExtractor
    from sklearn_sed.audio.store import FeatureView, extract_to_store, open_store
    from tests.conftest import TINY_FEATURES

    d = tiny_dataset
    ext = LogMelExtractor(**TINY_FEATURES).fit(d["audio"][:24])
    extract_to_store(ext, d["audio"][:24], tmp_path / "f.npy")
    store = open_store(tmp_path / "f.npy", ext)
    assert isinstance(store, FeatureView)
    seen = []

    class _Spy(Callback):
        def on_train_begin(self, net, X=None, **kwargs):
            seen.append(type(X))

    args = (d["y_weak"][:24], d["y_strong"][:24])
    params = dict(SMALL, validation_fraction=0.25)
    on_disk = PseudoLabelSED(**params, callbacks=[_Spy()]).fit(store, *args)
    in_memory = PseudoLabelSED(**params).fit(np.asarray(store), *args)
    assert seen[0] is FeatureView
    np.testing.assert_allclose(
        on_disk.predict_frames(d["F_test"][:2]),
        in_memory.predict_frames(d["F_test"][:2]),
        atol=1e-6,
    )


class _PseudoLabelSpy(Callback):
    """Keeps the frame labels of every relabelling."""

    def __init__(self):
        self.frames = []

    def on_pseudo_labels(self, net, *, frame_labels, **kwargs):
        self.frames.append(np.array(frame_labels))


def test_absent_negatives_leave_present_classes_below_theta_out(tiny_dataset):
    """Check pseudo_negatives="absent": pseudo labels hold NaN (left out of the
    loss) and the training stays finite; "all" (eq. 4) holds only 0 and 1."""
    d = tiny_dataset
    seen = {}
    for rule in ("all", "absent"):
        spy = _PseudoLabelSpy()
        sed = PseudoLabelSED(**SMALL, pseudo_negatives=rule, callbacks=[spy])
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
        assert np.isfinite(sed.net_.history[:, "train_loss"]).all()
        seen[rule] = np.concatenate([f.ravel() for f in spy.frames])
    assert set(np.unique(seen["all"]).tolist()) <= {0.0, 1.0}
    assert np.isnan(seen["absent"]).any()


def test_pseudo_low_ratio_widens_the_first_pseudo_labels(tiny_dataset):
    """Check pseudo_low_ratio: at the first relabelling (same seed, same stage
    1) the hysteresis labels hold every eq. 4 positive and more, on the same
    clips; bad values are refused by name."""
    d = tiny_dataset
    first = {}
    for ratio in (1.0, 0.5):
        spy = _PseudoLabelSpy()
        sed = PseudoLabelSED(
            **SMALL, threshold_start=0.65, pseudo_low_ratio=ratio, callbacks=[spy]
        )
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
        first[ratio] = spy.frames[0]
    eq4, hyst = first[1.0], first[0.5]
    assert eq4.shape == hyst.shape
    assert np.all(hyst >= eq4)
    assert hyst.sum() > eq4.sum() > 0
    with pytest.raises(ValueError, match="'pseudo_low_ratio' parameter"):
        PseudoLabelSED(**SMALL, pseudo_low_ratio=0.0).fit(
            d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
        )


def test_keep_strong_weighting_reaches_the_criterion_and_changes_stage_two(
    tiny_dataset,
):
    """Check stage2_weighting: the criterion gets it, stage 1 is the same under
    both weightings (same seed), and stage 2's losses differ."""
    d = tiny_dataset
    losses = {}
    for weighting in ("paper", "keep_strong"):
        sed = PseudoLabelSED(**SMALL, stage2_weighting=weighting)
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
        assert sed.net_.criterion_.weighting == weighting
        losses[weighting] = np.asarray(sed.net_.history[:, "train_loss"])
        stages = np.asarray(sed.net_.history[:, "stage"])
    stage1 = stages == 1
    np.testing.assert_allclose(losses["paper"][stage1], losses["keep_strong"][stage1])
    assert not np.allclose(losses["paper"][~stage1], losses["keep_strong"][~stage1])


def test_unknown_stage2_weighting_is_refused_at_fit(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(**SMALL, stage2_weighting="strong")
    with pytest.raises(ValueError, match="stage2_weighting"):
        sed.fit(d["F"][:4], d["y_weak"][:4], d["y_strong"][:4])


def test_crnn_teacher_shorthand_is_the_recipes_crnn_with_the_students_settings():
    """Check make_detector(teacher="crnn") gives make_teacher's CRNN: no stage
    2, as many epochs as the student's two stages, the student's seed,
    classes and augmentation; an unknown name is refused with the choices."""
    from sklearn_sed.networks.crnn import CRNN

    sed = make_detector(
        "cpu",
        teacher="crnn",
        max_epochs=3,
        max_iter=2,
        random_state=5,
        classes=["a"],
        filter_augment=4.0,
        mixup=0.5,
    )
    teacher = sed.teacher
    assert teacher.module.func is CRNN
    assert teacher.module.keywords == {"n_filters": 32, "hidden_size": 64, "n_mels": 64}
    assert (teacher.pseudo_label, teacher.max_epochs) == (False, 5)
    assert (teacher.random_state, teacher.classes) == (5, ["a"])
    assert (teacher.filter_augment, teacher.mixup) == (4.0, 0.5)  # same augmentation
    assert teacher.lr == RECIPES["cpu"]["lr"]
    assert make_teacher("paper").max_epochs == 30  # 20 + 10, the defaults
    assert make_teacher("cpu", n_mels=32).module.keywords["n_mels"] == 32
    with pytest.raises(
        ValueError, match=r'teacher must be an estimator, None or "crnn"'
    ):
        make_detector("cpu", teacher="rnn")


def test_cpu_teacher_recipe_is_cpu_with_a_crnn_teacher():
    """Check the "cpu_teacher" recipe: the "cpu" student with eq. 8's strong
    weight kept, and make_teacher's CRNN trained for both stages' epochs
    with the student's seed; overrides reach both."""
    from sklearn_sed.networks.crnn import CRNN

    sed = make_detector("cpu_teacher", random_state=3)
    cpu = make_detector("cpu")
    assert (sed.n_filters, sed.lr, sed.tune_postprocessing) == (
        cpu.n_filters,
        cpu.lr,
        cpu.tune_postprocessing,
    )
    assert (sed.max_epochs, sed.max_iter, sed.delta) == (10, 4, 0.1)
    assert sed.stage2_weighting == "keep_strong"
    # as measured: without the "cpu" recipe's FilterAugment, teacher included
    assert (sed.filter_augment, cpu.filter_augment) == (0.0, 6.0)
    teacher = sed.teacher
    assert teacher.filter_augment == 0.0
    assert teacher.module.func is CRNN
    assert (teacher.max_epochs, teacher.pseudo_label, teacher.teacher) == (
        14,
        False,
        None,
    )
    assert teacher.random_state == 3
    assert make_detector("cpu_teacher", max_epochs=2).teacher.max_epochs == 6
    assert make_detector("cpu_teacher", teacher=None).teacher is None


def test_pseudo_label_quality_from_events_equals_quality_from_frames():
    """Events are encoded at the pseudo labels' frame rate; None rows are
    unknown, like NaN rows of frames."""
    classes = ["a", "b"]
    events = [[(0.0, 5.0, "a")], [(2.5, 10.0, "b")], None]
    truth = np.full((3, 4, 2), np.nan, np.float32)
    for i, ev in enumerate(events[:2]):
        truth[i] = events_to_frames(ev, classes=classes, n_frames=4, duration=10.0)
    pseudo = np.zeros((3, 4, 2), np.float32)
    pseudo[0, 1:3, 0] = 1
    pseudo[1, 1:4, 1] = 1
    pseudo[2] = 1
    records = []
    for quality in (
        PseudoLabelQuality(truth),
        PseudoLabelQuality(y_true_events=events, classes=classes, duration=10.0),
    ):
        quality.initialize().on_pseudo_labels(
            None, iteration=0, threshold=0.5, clip_index=[0, 1, 2], frame_labels=pseudo
        )
        records.append(quality.records_)
    assert records[0] == records[1]
    assert records[1][0]["precision"] == pytest.approx(4 / 5)
    assert records[1][0]["recall"] == pytest.approx(4 / 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one truth.*neither"),
        ({"y_true_frames": np.zeros((1, 4, 2)), "y_true_events": [[]]}, "both"),
        ({"y_true_events": [[]]}, "needs classes="),
    ],
)
def test_pseudo_label_quality_names_a_missing_or_doubled_truth(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PseudoLabelQuality(**kwargs).initialize()


def test_pseudo_label_hooks_index_clips_as_given_to_fit(tiny_dataset):
    """With validation clips held out of the training data (validation_fraction),
    the clip_index that on_pseudo_labels hooks receive still points into the
    clips given to fit: every index is a weak-only clip there."""
    from skorch.callbacks import Callback

    class Record(Callback):
        def initialize(self):
            self.indices_ = []
            return self

        def on_pseudo_labels(self, net, *, clip_index, **kwargs):
            self.indices_.append(np.asarray(clip_index))

    d = tiny_dataset
    F, y_weak, y_strong = d["F"][:32], d["y_weak"][:32], list(d["y_strong"][:32])
    record = Record()
    sed = PseudoLabelSED(
        **dict(SMALL, max_iter=2),
        validation_fraction=0.5,
        callbacks=[record],
    )
    sed.fit(F, y_weak, y_strong)
    indices = np.concatenate(record.indices_)
    assert len(record.indices_) == 2
    assert len(indices) > 0
    # Held-out strong clips shift the positions: counted in the training
    # clips that are left, some of these would be strong clips here.
    assert all(y_strong[i] is None for i in indices)
