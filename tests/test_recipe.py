"""The localisation recipe: bfloat16 training, the learning rate schedule,
validation (best epoch, per-class tuning) and named recipes."""

import itertools

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_sed import (
    Augment,
    Decoder,
    PseudoLabelSchedule,
    PseudoLabelSED,
    WarmupCosine,
    make_detector,
)
from sklearn_sed.decoding.tuning import (
    FINAL_MEDIAN_FILTER_GRID,
    LOW_RATIO_GRID,
    tune_postprocessing,
)
from sklearn_sed.recipes import RECIPES, make_teacher
from sklearn_sed.training.callbacks import WarmupCosineLR
from tests.conftest import FAST_SED

SMALL = dict(
    FAST_SED,
    n_filters=4,
    max_epochs=3,
    pseudo_labels=PseudoLabelSchedule(max_iter=2),
    batch_size=8,
)


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
    assert len(losses) == SMALL["max_epochs"] + SMALL["pseudo_labels"].max_iter
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


def test_warmup_cosine_factor_rises_then_falls_to_zero():
    f = WarmupCosineLR.factor
    assert f(0.0, 10, 2) == 0.0
    assert f(1.0, 10, 2) == pytest.approx(0.5)
    assert f(2.0, 10, 2) == pytest.approx(1.0)
    assert f(6.0, 10, 2) == pytest.approx(0.5)
    assert f(10.0, 10, 2) == pytest.approx(0.0)
    assert f(5.0, 10, 0) == pytest.approx(0.5)


def test_cosine_schedule_lowers_the_rate_over_both_stages(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(**SMALL, lr_schedule=WarmupCosine(warmup_epochs=1)).fit(
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
    sed = PseudoLabelSED(**SMALL, decoder=Decoder(tune=True)).fit(
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
        sed.predict_frames(F_val),
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


def test_resume_with_a_schedule_and_validation_gives_same_model(tiny_dataset, tmp_path):
    """Checkpoints carry the best weights and the schedule's place."""
    d = tiny_dataset
    F, y_weak, y_strong, F_val, y_val = _split(d)
    F, y_weak, y_strong = F[:16], y_weak[:16], y_strong[:16]
    params = dict(SMALL, lr_schedule=WarmupCosine(), decoder=Decoder(tune=True))
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


def test_make_detector_merges_recipe_and_overrides():
    sed = make_detector("cpu", max_epochs=2, n_filters=4)
    assert sed.max_epochs == 2
    assert sed.n_filters == 4
    assert sed.optimizer is torch.optim.Adam
    assert sed.train_dtype == "float32"
    assert sed.compile == "auto"  # only where the training probe proves it
    paper = make_detector("paper").get_params(deep=False)
    default = PseudoLabelSED().get_params(deep=False)
    assert paper.pop("pseudo_labels").get_params() == PseudoLabelSchedule().get_params()
    assert paper.pop("decoder").get_params() == Decoder().get_params()
    assert default.pop("pseudo_labels") == "paper"
    assert default.pop("decoder") is None
    assert (paper.pop("compile"), default.pop("compile")) == ("auto", False)
    assert paper == default
    # Every detector gets parameter objects of its own.
    assert make_detector("cpu").decoder is not make_detector("cpu").decoder
    assert set(RECIPES) == {"cpu", "cpu_teacher", "dcase2019", "paper"}
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


def test_keep_strong_weighting_reaches_the_criterion_and_changes_stage_two(
    tiny_dataset,
):
    """Check the schedule's weighting: the criterion gets it, stage 1 is the same under
    both weightings (same seed), and stage 2's losses differ."""
    d = tiny_dataset
    losses = {}
    for weighting in ("paper", "keep_strong"):
        schedule = PseudoLabelSchedule(max_iter=2, weighting=weighting)
        sed = PseudoLabelSED(**dict(SMALL, pseudo_labels=schedule))
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
        assert sed.net_.criterion_.weighting == weighting
        losses[weighting] = np.asarray(sed.net_.history[:, "train_loss"])
        stages = np.asarray(sed.net_.history[:, "stage"])
    stage1 = stages == 1
    np.testing.assert_allclose(losses["paper"][stage1], losses["keep_strong"][stage1])
    assert not np.allclose(losses["paper"][~stage1], losses["keep_strong"][~stage1])


def test_unknown_stage2_weighting_is_refused_at_fit(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(
        **dict(SMALL, pseudo_labels=PseudoLabelSchedule(weighting="strong"))
    )
    with pytest.raises(ValueError, match="'weighting' parameter"):
        sed.fit(d["F"][:4], d["y_weak"][:4], d["y_strong"][:4])


def test_crnn_teacher_shorthand_is_the_recipes_crnn_with_the_students_settings():
    """Check a schedule whose teacher is "crnn" gets make_teacher's CRNN: no
    stage 2, as many epochs as the student's two stages, the student's seed,
    classes and augmentation; an unknown name is refused with the choices."""
    from sklearn_sed.networks.crnn import CRNN

    sed = make_detector(
        "cpu",
        max_epochs=3,
        pseudo_labels=PseudoLabelSchedule(max_iter=2, teacher="crnn"),
        random_state=5,
        classes=["a"],
        augment=Augment(filter_augment=4.0),
    )
    teacher = sed.pseudo_labels.teacher
    assert teacher.module.func is CRNN
    assert teacher.module.keywords == {"n_filters": 32, "hidden_size": 64, "n_mels": 64}
    assert (teacher.pseudo_labels, teacher.max_epochs) == (None, 5)
    assert (teacher.random_state, teacher.classes) == (5, ["a"])
    assert teacher.augment.filter_augment == 4.0  # same augmentation
    assert teacher.augment is not sed.augment  # a copy of its own
    assert teacher.lr == RECIPES["cpu"]["lr"]
    assert make_teacher("paper").max_epochs == 30  # 20 + 10, the defaults
    assert make_teacher("cpu", n_mels=32).module.keywords["n_mels"] == 32
    with pytest.raises(
        ValueError, match=r'teacher must be an estimator, None or "crnn"'
    ):
        make_detector("cpu", pseudo_labels=PseudoLabelSchedule(teacher="rnn"))


def test_cpu_teacher_recipe_is_cpu_with_a_crnn_teacher():
    """Check the "cpu_teacher" recipe: the "cpu" student with eq. 8's strong
    weight kept, and make_teacher's CRNN trained for both stages' epochs
    with the student's seed; overrides reach both."""
    from sklearn_sed.networks.crnn import CRNN

    sed = make_detector("cpu_teacher", random_state=3)
    cpu = make_detector("cpu")
    assert (sed.n_filters, sed.lr, sed.decoder.tune) == (
        cpu.n_filters,
        cpu.lr,
        cpu.decoder.tune,
    )
    schedule = sed.pseudo_labels
    assert (sed.max_epochs, schedule.max_iter, schedule.delta) == (10, 4, 0.1)
    assert schedule.weighting == "keep_strong"
    # as measured: without the "cpu" recipe's FilterAugment, teacher included
    assert (sed.augment.filter_augment, cpu.augment.filter_augment) == (0.0, 6.0)
    teacher = schedule.teacher
    assert teacher.augment.filter_augment == 0.0
    assert teacher.module.func is CRNN
    assert (teacher.max_epochs, teacher.pseudo_labels) == (14, None)
    assert teacher.random_state == 3
    two = make_detector("cpu_teacher", max_epochs=2)
    assert two.pseudo_labels.teacher.max_epochs == 6
    none = make_detector("cpu_teacher", pseudo_labels__teacher=None)
    assert none.pseudo_labels.teacher is None
