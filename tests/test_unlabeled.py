"""Clips without any label: marked -1, pseudo-labelled when confident, seen by
the mean teacher's consistency cost; in fit, Pipeline, model selection, the
feature store, model files and the command line."""

import os
import re
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from skorch.callbacks import Callback

import sklearn_sed
from sklearn_sed import (
    LogMelExtractor,
    MeanTeacher,
    PseudoLabelSchedule,
    PseudoLabelSED,
    make_detector,
)
from sklearn_sed.audio.store import extract_to_store, open_store
from sklearn_sed.cli import main
from sklearn_sed.datasets import load_desed
from sklearn_sed.decoding.cv import TunedPostprocessingCV
from sklearn_sed.labels import (
    KIND_UNLABELED,
    UNLABELED,
    combine_labels,
    encode_targets,
    encode_weak_labels,
    split_labels,
)
from sklearn_sed.metrics.scoring import event_f1_scorer
from sklearn_sed.pipeline import make_pipeline
from sklearn_sed.training.losses import paper_class_weights
from sklearn_sed.training.pseudo_labels import select_unlabeled
from tests.conftest import FAST_SED, TINY_FEATURES

N = 32


@pytest.fixture(scope="module")
def data(tiny_dataset):
    """The tiny dataset's first clips with eight weak-only clips unlabelled."""
    d = tiny_dataset
    y_weak, y_strong = list(d["y_weak"][:N]), list(d["y_strong"][:N])
    unlabeled = [i for i, s in enumerate(y_strong) if s is None][:8]
    for i in unlabeled:
        y_weak[i] = UNLABELED
    return {
        "F": d["F"][:N],
        "audio": d["audio"][:N],
        "y_weak": y_weak,
        "y_strong": y_strong,
        "unlabeled": unlabeled,
        "F_test": d["F_test"],
        "y_test": d["y_test"],
    }


class _Spy(Callback):
    def __init__(self):
        self.calls = []

    def on_pseudo_labels(self, net, *, clip_index, frame_labels, **kwargs):
        self.calls.append((np.array(clip_index), np.array(frame_labels)))


def test_minus_one_marks_an_unlabelled_clip_and_none_is_refused_with_the_fix():
    Y, classes = encode_weak_labels([["a"], UNLABELED, []])
    assert classes.tolist() == ["a"]
    assert Y.tolist() == [[1.0], [-1.0], [0.0]]
    matrix, _ = encode_weak_labels(np.array([[1, 0], [-1, -1]]))
    assert matrix[1].tolist() == [-1.0, -1.0]
    with pytest.raises(ValueError, match=r"y_weak\[1\] is None.*-1.*\[\]"):
        encode_weak_labels([["a"], None])
    with pytest.raises(ValueError, match="rows of -1 for unlabelled clips"):
        encode_weak_labels(np.array([[1, -1]]))


def test_a_clip_both_unlabelled_and_labelled_is_refused():
    Y, classes = encode_weak_labels([UNLABELED, ["a"]])
    with pytest.raises(ValueError, match=r"unlabelled in y_weak.*not both"):
        encode_targets(
            Y, [[(0.0, 1.0, "a")], None], classes=classes, n_frames=4, duration=1.0
        )
    with pytest.raises(ValueError, match="unlabelled or labelled, not both"):
        combine_labels([UNLABELED], [[(0.0, 1.0, "a")]])
    y = combine_labels([UNLABELED, ["a"]], [None, None])
    assert split_labels(y) == ([UNLABELED, ["a"]], [None, None])
    targets = encode_targets(Y, None, classes=classes, n_frames=4, duration=1.0)
    assert targets["kind"].tolist()[0] == KIND_UNLABELED


def test_confident_unlabelled_clips_get_a_pseudo_clip_label_and_eq4_frames():
    frames = np.zeros((3, 4, 2), np.float32)
    frames[0, 1:3, 0] = 0.9  # sure of class 0, sure of no class 1
    frames[1, 1, 0] = 0.5  # unsure of class 0
    frames[2, 0, 1] = 0.8  # sure of class 1 only
    selected, clip, pseudo = select_unlabeled(
        frames.max(axis=1), frames, threshold=0.75
    )
    assert selected.tolist() == [True, False, True]
    assert clip[[0, 2]].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert pseudo[0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert pseudo[0, :, 1].sum() == 0


def test_fit_pseudo_labels_confident_unlabelled_clips_and_keeps_them_out_of_eq2(
    data,
):
    """Unlabelled clips: no weight in eq. 2, M_w counts the weak ones only, and
    confident ones are pseudo-labelled (and told to hooks) in stage 2."""
    spy = _Spy()
    schedule = PseudoLabelSchedule(max_iter=2, unlabeled_confidence=0.51)
    sed = PseudoLabelSED(**{**FAST_SED, "pseudo_labels": schedule}, callbacks=[spy])
    sed.fit(data["F"], data["y_weak"], data["y_strong"])
    n_unl = len(data["unlabeled"])
    assert sed.n_unlabeled_ == n_unl
    assert sed.n_weak_ == sum(s is None for s in data["y_strong"]) - n_unl
    labelled = [w for w in data["y_weak"] if not isinstance(w, int)]
    Y, _ = encode_weak_labels(labelled, sed.classes_)
    np.testing.assert_allclose(sed.class_weight_, paper_class_weights(Y.sum(axis=0)))
    history = sed.pseudo_label_history_
    assert all(h["n_unlabeled"] == n_unl for h in history)
    assert any(h["n_pseudo_unlabeled"] > 0 for h in history)
    picked = set(np.concatenate([c for c, _ in spy.calls]).tolist())
    assert picked & set(data["unlabeled"])


def test_unlabelled_clips_that_nothing_would_use_are_refused(data):
    for schedule in (None, PseudoLabelSchedule(unlabeled_confidence=None)):
        sed = PseudoLabelSED(**{**FAST_SED, "pseudo_labels": schedule})
        with pytest.raises(ValueError, match=r"8 training clip.*have no label"):
            sed.fit(data["F"], data["y_weak"], data["y_strong"])


def test_the_cpu_recipe_takes_unlabelled_clips_without_another_setting(data):
    sed = make_detector(
        "cpu", n_filters=4, max_epochs=1, duration=2.0, random_state=0
    ).set_params(pseudo_labels__max_iter=1)
    sed.fit(data["F"], data["y_weak"], data["y_strong"])
    assert sed.n_unlabeled_ == len(data["unlabeled"])


def test_the_dcase2019_recipe_is_the_baseline_crnn_mean_teacher_and_trains(data):
    """The recipe is the DCASE2019 baseline's CRNN and mean teacher, and it
    trains with unlabelled clips (its consistency cost is recorded)."""
    from sklearn_sed.networks import CRNN, network_factory

    sed = make_detector("dcase2019")
    assert sed.module.func is CRNN
    assert sed.module.keywords == {"n_filters": 32, "hidden_size": 64}
    assert sed.mean_teacher.ema_decay == 0.99
    assert sed.pseudo_labels is None
    assert sed.max_epochs == 14
    small = network_factory("crnn", n_filters=4, hidden_size=4, n_mels=32)
    sed.set_params(module=small, max_epochs=2, duration=2.0, random_state=0, verbose=0)
    sed.fit(data["F"], data["y_weak"], data["y_strong"])
    assert sed.n_unlabeled_ == len(data["unlabeled"])
    assert all(row["consistency"] > 0 for row in sed.net_.history)


def test_mean_teacher_adds_a_ramped_consistency_cost_and_is_the_fitted_model(data):
    """The history records the cost and its weight, which ramps up to the
    maximum; with no cost and no averaging the fit is the plain fit."""
    params = {**FAST_SED, "max_epochs": 4, "pseudo_labels": None}
    args = (data["F"], data["y_weak"], data["y_strong"])
    with pytest.warns(UserWarning, match="ema_decay=0.999 averages the teacher"):
        sed = PseudoLabelSED(**params, mean_teacher=MeanTeacher()).fit(*args)
    weights = sed.net_.history[:, "consistency_weight"]
    assert weights[0] < weights[1] <= weights[-1] == pytest.approx(2.0)
    assert all(c > 0 for c in sed.net_.history[:, "consistency"])
    labelled = [i for i, w in enumerate(data["y_weak"]) if not isinstance(w, int)]
    plain = PseudoLabelSED(**params).fit(
        data["F"][labelled],
        [data["y_weak"][i] for i in labelled],
        [data["y_strong"][i] for i in labelled],
    )
    inert = PseudoLabelSED(
        **params, mean_teacher=MeanTeacher(ema_decay=0.0, consistency=0.0)
    ).fit(*args)
    # Unlabelled clips change the batches, so compare with its own data.
    assert (
        inert.predict_frames(data["F_test"]).shape
        == plain.predict_frames(data["F_test"]).shape
    )
    same = PseudoLabelSED(**params, mean_teacher=MeanTeacher(consistency=0.0))
    same.set_params(mean_teacher__ema_decay=0.0).fit(*args)
    np.testing.assert_allclose(
        same.predict_frames(data["F_test"]),
        inert.predict_frames(data["F_test"]),
        atol=1e-6,
    )


def test_a_mean_teacher_too_slow_for_the_fit_warns_with_a_decay_that_fits():
    """The baseline's 0.999 spans 1.3 % of its 75,000 batches: no warning;
    over 2,000 batches it would average mostly untrained weights: a warning
    whose suggested decay passes the same check."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert MeanTeacher().check_horizon(75_000)
    with pytest.warns(UserWarning, match="50 % of this fit's 2000") as record:
        assert not MeanTeacher().check_horizon(2_000)
    suggested = float(re.search(r"ema_decay=([0-9.]+)\) or", str(record[0].message))[1])
    assert suggested < 0.999
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert MeanTeacher(ema_decay=suggested).check_horizon(2_000)


def test_a_mean_teacher_with_no_cost_and_no_averaging_trains_as_without_one(data):
    labelled = [i for i, w in enumerate(data["y_weak"]) if not isinstance(w, int)]
    args = (
        data["F"][labelled],
        [data["y_weak"][i] for i in labelled],
        [data["y_strong"][i] for i in labelled],
    )
    plain = PseudoLabelSED(**FAST_SED).fit(*args)
    inert = PseudoLabelSED(
        **FAST_SED, mean_teacher=MeanTeacher(ema_decay=0.0, consistency=0.0)
    ).fit(*args)
    np.testing.assert_allclose(
        inert.predict_frames(data["F_test"]),
        plain.predict_frames(data["F_test"]),
        atol=1e-5,
    )


def test_the_mean_teacher_round_trips_through_a_model_file(data, tmp_path):
    sed = PseudoLabelSED(
        **FAST_SED, mean_teacher=MeanTeacher(consistency=1.5, rampup=0.25)
    ).fit(data["F"], data["y_weak"], data["y_strong"])
    sklearn_sed.save(sed, tmp_path / "mt.sed")
    loaded = sklearn_sed.load(tmp_path / "mt.sed")
    assert loaded.mean_teacher.get_params() == sed.mean_teacher.get_params()
    assert loaded.n_unlabeled_ == len(data["unlabeled"])
    np.testing.assert_array_equal(
        loaded.predict_frames(data["F_test"]), sed.predict_frames(data["F_test"])
    )


def test_pipeline_model_selection_and_the_store_take_unlabelled_clips(data, tmp_path):
    """Pipeline.fit on audio, TunedPostprocessingCV on combined labels (it
    scores the strong clips only) and a fit from a feature store."""
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST_SED))
    pipe.fit(data["audio"], data["y_weak"], data["y_strong"])
    assert pipe[-1].n_unlabeled_ == len(data["unlabeled"])
    y = combine_labels(data["y_weak"], data["y_strong"])
    assert event_f1_scorer(pipe, data["audio"], y) >= 0.0  # skips unlabelled clips
    tuned = TunedPostprocessingCV(
        PseudoLabelSED(**FAST_SED), cv=2, thresholds=(0.3,), median_filters=(0.0,)
    ).fit(data["F"], y)
    assert tuned.threshold_.shape == (2,)
    ext = LogMelExtractor(**TINY_FEATURES).fit(data["audio"])
    path = tmp_path / "store.npy"
    extract_to_store(ext, data["audio"], path)
    store = open_store(path, ext)
    from_store = PseudoLabelSED(**FAST_SED).fit(store, data["y_weak"], data["y_strong"])
    assert from_store.n_unlabeled_ == len(data["unlabeled"])


@pytest.fixture(scope="module")
def desed_with_unlabeled(tmp_path_factory, data):
    """A DESED layout: strong, weak and unlabelled TSVs, one audio folder each."""
    root = tmp_path_factory.mktemp("desed-unlabeled")
    tsvs = {
        "strong": ["filename\tonset\toffset\tevent_label"],
        "weak": ["filename\tevent_labels"],
        "unlabeled": ["filename"],
    }
    for i, (x, w, s) in enumerate(
        zip(data["audio"], data["y_weak"], data["y_strong"], strict=True)
    ):
        kind = "unlabeled" if isinstance(w, int) else "weak" if s is None else "strong"
        os.makedirs(root / kind, exist_ok=True)
        sf.write(root / kind / f"c{i}.wav", x, TINY_FEATURES["sr"])
        if kind == "strong":
            tsvs[kind] += [f"c{i}.wav\t{on}\t{off}\t{lab}" for on, off, lab in s]
        elif kind == "weak":
            tsvs[kind].append(f"c{i}.wav\t{','.join(w)}")
        else:
            tsvs[kind].append(f"c{i}.wav")
    for kind, rows in tsvs.items():
        (root / f"{kind}.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_load_desed_reads_the_three_training_splits(desed_with_unlabeled):
    root = desed_with_unlabeled
    X, y_weak, y_strong = load_desed(
        strong_tsv=root / "strong.tsv",
        weak_tsv=root / "weak.tsv",
        unlabeled_tsv=root / "unlabeled.tsv",
        strong_audio_dir=root / "strong",
        weak_audio_dir=root / "weak",
        unlabeled_audio_dir=root / "unlabeled",
        classes=None,
    )
    assert y_weak.count(UNLABELED) == 8
    assert all(s is None for w, s in zip(y_weak, y_strong, strict=True) if w == -1)
    assert sum(os.path.dirname(x).endswith("unlabeled") for x in X) == 8


def _train_argv(root, output, ckpt):
    argv = ["train", "--output", str(output), "--checkpoint-dir", str(ckpt)]
    for kind in ("strong", "weak", "unlabeled"):
        argv += [f"--{kind}-tsv", str(root / f"{kind}.tsv")]
        argv += [f"--{kind}-audio-dir", str(root / kind)]
    sets = [
        *(f"{k}={v}" for k, v in TINY_FEATURES.items()),
        "pseudolabelsed__duration=2.0",
        "n_filters=4",
        "n_blocks=1",
        "max_epochs=2",
        "pseudo_labels__max_iter=1",
        "mean_teacher=MeanTeacher(consistency=1.0)",
    ]
    for s in sets:
        argv += ["--set", s]
    return argv


def test_train_takes_an_unlabelled_tsv_and_resumes_its_checkpoint(
    desed_with_unlabeled, tmp_path, monkeypatch
):
    """``train --unlabeled-tsv`` with a mean teacher, then the same command
    again: the checkpoint resumes, no epoch is trained twice, same model."""
    import skorch

    root = desed_with_unlabeled
    ckpt = tmp_path / "ckpt"
    assert main(_train_argv(root, tmp_path / "a.sed", ckpt)) == 0
    first = sklearn_sed.load(tmp_path / "a.sed")
    assert first[-1].n_unlabeled_ == 8
    assert first[-1].mean_teacher.consistency == 1.0
    epochs = []
    original = skorch.NeuralNet.run_single_epoch

    def counting(self, *args, **kwargs):
        epochs.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(skorch.NeuralNet, "run_single_epoch", counting)
    assert main(_train_argv(root, tmp_path / "b.sed", ckpt)) == 0
    assert epochs == []
    second = sklearn_sed.load(tmp_path / "b.sed")
    X = [str(root / "strong" / f) for f in sorted(os.listdir(root / "strong"))[:2]]
    np.testing.assert_allclose(
        second.predict_frames(X), first.predict_frames(X), atol=1e-6
    )


def test_train_refuses_an_unlabelled_tsv_that_lists_missing_audio(
    desed_with_unlabeled, tmp_path, capsys
):
    root = desed_with_unlabeled
    argv = _train_argv(root, tmp_path / "m.sed", tmp_path / "ckpt")
    argv[argv.index("--unlabeled-audio-dir") + 1] = str(root / "weak")
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "unlabeled.tsv" in err
    assert "--unlabeled-audio-dir" in err


def test_set_builds_only_allowed_parameter_objects(desed_with_unlabeled, tmp_path):
    root = desed_with_unlabeled
    argv = _train_argv(root, tmp_path / "m.sed", tmp_path / "ckpt")
    argv[argv.index("mean_teacher=MeanTeacher(consistency=1.0)")] = (
        "mean_teacher=os.system('true')"
    )
    assert main(argv) != 0


def test_the_fitted_model_is_the_mean_teacher_not_the_last_student(data):
    """Without validation clips, fit leaves the teacher's (averaged) weights:
    the net predicts what the callback's average predicts (with a decay of
    0.9 the last student weights differ from it)."""
    from sklearn_sed.training.net import forward_probabilities

    sed = PseudoLabelSED(
        **{**FAST_SED, "max_epochs": 3, "pseudo_labels": None},
        mean_teacher=MeanTeacher(ema_decay=0.9),
    ).fit(data["F"], data["y_weak"], data["y_strong"])
    callback = dict(sed.net_.callbacks_)["mean_teacher"]
    teacher = callback.averaged_.module
    frames = sed.predict_frames(data["F_test"])
    expected, _ = forward_probabilities(
        sed.net_, data["F_test"], None, 8, module=teacher
    )
    np.testing.assert_allclose(frames, expected, atol=1e-6)


@pytest.mark.parametrize("train_dtype", ["float32", "bfloat16"])
def test_the_mean_teacher_computes_its_targets_in_the_training_dtype(
    data, monkeypatch, train_dtype
):
    """Check the teacher's forward pass (the consistency cost's targets) runs
    under the student's autocast: bfloat16 with train_dtype="bfloat16"
    (a float32 teacher beside a bfloat16 student took half of each batch's
    time), none in float32."""
    from sklearn_sed.training.callbacks import MeanTeacherCallback

    seen = []
    consistency_loss = MeanTeacherCallback.consistency_loss

    def spy(self, net, X, y_pred):
        teacher = self.averaged_.module if self.averaged_ is not None else None
        if teacher is not None:
            hook = teacher.register_forward_pre_hook(
                lambda *_: seen.append(torch.is_autocast_enabled("cpu"))
            )
        try:
            return consistency_loss(self, net, X, y_pred)
        finally:
            if teacher is not None:
                hook.remove()

    monkeypatch.setattr(MeanTeacherCallback, "consistency_loss", spy)
    params = {**FAST_SED, "max_epochs": 1, "pseudo_labels": None, "batch_size": 4}
    teacher = MeanTeacher(ema_decay=0.5)
    sed = PseudoLabelSED(**params, mean_teacher=teacher, train_dtype=train_dtype)
    sed.fit(data["F"], data["y_weak"], data["y_strong"])
    assert seen  # the teacher ran on the batches after the first
    assert set(seen) == {train_dtype == "bfloat16"}
