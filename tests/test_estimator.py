import copy

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sklearn_sed import Decoder, PseudoLabelSchedule, PseudoLabelSED
from tests.conftest import FAST_SED as FAST
from tests.conftest import TINY_SED


def test_end_to_end_learns_two_sounds(fitted_sed, tiny_dataset):
    """Check a small net on two distinct sounds reaches event F1 far above chance."""
    d = tiny_dataset
    event_f1 = fitted_sed.score(d["F_test"], d["y_test"])
    segment_f1 = fitted_sed.score_segments(d["F_test"], d["y_test"])
    # Chance (random frames at the class prior) scores well under 0.2 here.
    assert event_f1 > 0.6, event_f1
    assert segment_f1 > 0.8, segment_f1


def test_output_shapes(fitted_sed, tiny_dataset):
    """Check the shapes of every prediction method."""
    F = tiny_dataset["F_test"]
    n = len(F)
    frames = fitted_sed.predict_frames(F)
    assert frames.shape == (n, fitted_sed.n_frames_out_, 2)
    assert fitted_sed.n_frames_out_ == 33  # ceil(257 / 8)
    proba = fitted_sed.predict_proba(F)
    assert proba.shape == (n, 2)
    np.testing.assert_allclose(proba, frames.max(axis=1), rtol=1e-6)
    pred = fitted_sed.predict(F)
    assert pred.shape == (n, 2)
    assert set(np.unique(pred)) <= {0, 1}
    events = fitted_sed.predict_events(F)
    assert len(events) == n
    for clip in events:
        for onset, offset, label in clip:
            assert 0 <= onset < offset <= 2.0
            assert label in fitted_sed.classes_


def test_bfloat16_inference_close_to_float32_and_no_retraining(
    fitted_sed, tiny_dataset
):
    """Check inference_dtype="bfloat16" returns float32 probabilities within
    bfloat16 rounding of the float32 ones, changes no weight, and leaves the
    network in float32."""
    F = tiny_dataset["F_test"]
    ref = fitted_sed.predict_frames(F)
    weights = [p.detach().clone() for p in fitted_sed.net_.module_.parameters()]
    est = copy.deepcopy(fitted_sed).set_params(inference_dtype="bfloat16")
    low = est.predict_frames(F)
    proba = est.predict_proba(F)
    assert low.dtype == np.float32
    assert low.shape == ref.shape
    assert not np.array_equal(low, ref)  # autocast did run in bfloat16
    np.testing.assert_allclose(low, ref, atol=0.05)
    np.testing.assert_allclose(proba, low.max(axis=1), rtol=1e-6)
    for before, after in zip(weights, est.net_.module_.parameters(), strict=True):
        assert after.dtype == torch.float32
        assert torch.equal(before, after)
    np.testing.assert_array_equal(fitted_sed.predict_frames(F), ref)


def test_predict_batch_size_changes_speed_not_predictions(
    fitted_sed, tiny_dataset, monkeypatch
):
    """Check prediction runs one clip per forward pass on a CPU by default,
    predict_batch_size overrides it, and the probabilities do not depend on it."""
    from sklearn_sed import estimator

    seen, forward = [], estimator._forward

    def spy(net, X, indices, batch_size, dtype="float32", **kwargs):
        seen.append(batch_size)
        return forward(net, X, indices, batch_size, dtype=dtype, **kwargs)

    monkeypatch.setattr(estimator, "_forward", spy)
    F = tiny_dataset["F_test"]
    one = fitted_sed.predict_frames(F)
    five = copy.deepcopy(fitted_sed).set_params(predict_batch_size=5).predict_frames(F)
    assert seen == [1, 5]
    np.testing.assert_allclose(one, five, rtol=1e-5, atol=1e-6)


def test_pseudo_label_history_records_threshold_and_count(fitted_sed):
    """Check one record per iteration with the falling threshold and M_p."""
    hist = fitted_sed.pseudo_label_history_
    assert fitted_sed.n_iter_ == 3 == len(hist)
    assert [h["threshold"] for h in hist] == pytest.approx([0.75, 0.65, 0.55])
    assert all(0 <= h["n_pseudo"] <= fitted_sed.n_weak_ for h in hist)
    assert hist[-1]["n_pseudo"] > 0
    stages = fitted_sed.net_.history[:, "stage"]
    assert stages == [1] * 15 + [2] * 3


def test_pseudo_label_false_runs_stage_one_only(tiny_dataset):
    """Check pseudo_labels=None trains only stage 1 (no pseudo labels)."""
    d = tiny_dataset
    sed = PseudoLabelSED(**{**FAST, "max_epochs": 2, "pseudo_labels": None})
    sed.fit(d["F"], d["y_weak"], d["y_strong"])
    assert sed.n_iter_ == 0
    assert sed.pseudo_label_history_ == []
    assert len(sed.net_.history) == 2


def test_same_random_state_identical_predictions(tiny_dataset):
    """Check two fits with one seed give bit-identical predictions on CPU."""
    d = tiny_dataset
    a = PseudoLabelSED(**FAST).fit(d["F"], d["y_weak"], d["y_strong"])
    b = PseudoLabelSED(**FAST).fit(d["F"], d["y_weak"], d["y_strong"])
    np.testing.assert_array_equal(a.predict_frames(d["F"]), b.predict_frames(d["F"]))


def test_joblib_round_trip_identical_predictions(fitted_sed, tiny_dataset, tmp_path):
    """Check joblib persistence keeps predictions identical."""
    path = tmp_path / "sed.joblib"
    joblib.dump(fitted_sed, path)
    loaded = joblib.load(path)
    F = tiny_dataset["F_test"]
    np.testing.assert_array_equal(
        loaded.predict_frames(F), fitted_sed.predict_frames(F)
    )
    assert loaded.predict_events(F) == fitted_sed.predict_events(F)


def test_not_fitted_error():
    """Check predict before fit raises NotFittedError."""
    with pytest.raises(NotFittedError):
        PseudoLabelSED().predict(np.zeros((1, 64, 8), np.float32))


def test_clone_get_set_params():
    """Check clone and get/set_params follow scikit-learn's contract."""
    sed = PseudoLabelSED(n_filters=4, decoder=Decoder(threshold=0.3))
    c = clone(sed)
    assert c.get_params()["decoder__threshold"] == 0.3
    assert c.decoder is not sed.decoder  # a parameter object is cloned too
    c.set_params(decoder__threshold=0.7, n_blocks=3)
    assert c.decoder.threshold == 0.7
    assert c.n_blocks == 3
    assert sed.decoder.threshold == 0.3
    assert "n_filters=4" in repr(sed)


def test_indicator_weak_labels_and_frame_strong_labels(tiny_dataset):
    """Check y_weak as a 0/1 matrix and y_strong as frames with NaN rows."""
    d = tiny_dataset
    F = d["F"][:8]
    sed = PseudoLabelSED(**FAST, classes=["a", "b"])
    sed.fit(F, np.eye(2)[np.arange(8) % 2], None)
    n_out = sed.n_frames_out_
    frames = np.full((8, n_out, 2), np.nan)
    frames[:4] = 0
    frames[:4, :5, 0] = 1  # clips 0-3 hold class a in frames 0-4
    y_weak = np.zeros((8, 2))
    y_weak[:4, 0] = 1
    with pytest.warns(UserWarning, match="never occur"):
        sed.fit(F, y_weak, frames)
    assert sed.n_strong_ == 4
    assert sed.n_weak_ == 4


def test_contradicting_strong_and_weak_labels(tiny_dataset):
    """Check strong events that contradict the weak label are refused."""
    F = tiny_dataset["F"][:2]
    with pytest.raises(ValueError, match=r"y_strong\[0\] contradicts y_weak\[0\]"):
        PseudoLabelSED(**FAST).fit(F, [["a"], ["b"]], [[(0.0, 1.0, "b")], None])


def test_y_weak_length_mismatch(tiny_dataset):
    """Check a y_weak of the wrong length is refused."""
    with pytest.raises(ValueError, match="y_weak has 1 entries but X has 2 clips"):
        PseudoLabelSED(**FAST).fit(tiny_dataset["F"][:2], [["a"]])


def test_wrong_feature_shape_messages(fitted_sed):
    """Check 2-D input and a different mel count are refused clearly."""
    with pytest.raises(ValueError, match="expects a 3-D array"):
        fitted_sed.predict(np.zeros((3, 32), np.float32))
    with pytest.raises(ValueError, match="fitted with 32"):
        fitted_sed.predict(np.zeros((1, 64, 40), np.float32))
    with pytest.raises(TypeError, match="got file paths"):
        fitted_sed.predict(["a.wav"])


def test_invalid_parameter_message(tiny_dataset):
    """Check parameter validation names the parameter."""
    with pytest.raises(ValueError, match="'delta' parameter"):
        PseudoLabelSED(pseudo_labels=PseudoLabelSchedule(delta=2.0)).fit(
            tiny_dataset["F"][:2], [["a"], ["b"]]
        )


def test_custom_module_class_is_built_with_n_classes(tiny_dataset):
    """Check a custom module class gets n_classes and trains."""
    from sklearn_sed.networks.resnet import ResNetSED

    class Small(ResNetSED):
        def __init__(self, n_classes):
            super().__init__(n_classes, n_filters=2, n_blocks=1)

    d = tiny_dataset
    sed = PseudoLabelSED(
        Small, **{k: v for k, v in FAST.items() if k not in ("n_filters", "n_blocks")}
    )
    sed.fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
    assert sed.predict_frames(d["F"][:2]).shape[2] == len(sed.classes_)


def test_tuned_params_in_training_config(tiny_dataset):
    """Check threshold and median filter change events but not the network."""
    d = tiny_dataset
    sed = PseudoLabelSED(**FAST).fit(d["F"][:8], d["y_weak"][:8], d["y_strong"][:8])
    frames = sed.predict_frames(d["F"][:4])
    sed.set_params(decoder=Decoder(threshold=0.0))
    assert all(len(clip) >= 1 for clip in sed.predict_events(d["F"][:4]))
    np.testing.assert_array_equal(frames, sed.predict_frames(d["F"][:4]))


def test_default_configuration_shapes_on_ten_second_clips():
    """Check the paper-size defaults map 1024 x 64 features to 128 x n_classes."""
    rng = np.random.default_rng(0)
    X = rng.random((2, 1024, 64), dtype=np.float32)
    sed = PseudoLabelSED(
        n_filters=4, n_blocks=1, max_epochs=1, pseudo_labels=None, random_state=0
    )
    sed.fit(X, [["Dog"], ["Cat"]])
    assert sed.predict_frames(X).shape == (2, 128, 2)


assert TINY_SED["pseudo_labels"].max_iter == 3  # test_pseudo_label_history relies on it


def test_decoding_settings_are_the_parameters_per_class_until_tuned(fitted_sed):
    threshold, median, low = fitted_sed.decoding_settings()
    n = len(fitted_sed.classes_)
    decoder = fitted_sed.decoder
    np.testing.assert_array_equal(threshold, np.full(n, decoder.threshold))
    np.testing.assert_array_equal(median, np.full(n, decoder.median_filter_sec))
    np.testing.assert_array_equal(low, threshold)  # single thresholding
    with pytest.raises(NotFittedError):
        PseudoLabelSED().decoding_settings()


def test_low_threshold_parameter_decodes_by_hysteresis(fitted_sed):
    """``low_threshold`` reaches decoding: an event whose probability dips
    below the threshold stays one event."""
    sed = copy.deepcopy(fitted_sed).set_params(
        decoder=Decoder(threshold=0.5, median_filter_sec=0.0, low_threshold=0.2)
    )
    _threshold, _median, low = sed.decoding_settings()
    np.testing.assert_array_equal(low, np.full(len(sed.classes_), 0.2))
    n_frames = sed.n_frames_out_
    p = np.zeros((1, n_frames, len(sed.classes_)))
    p[0, 10:30, 0] = 0.3
    p[0, 12, 0] = p[0, 28, 0] = 0.9
    (events,) = sed.decode(p)
    frame = sed.duration / n_frames
    assert events == [(10 * frame, 30 * frame, sed.classes_[0])]
    (single,) = sed.set_params(decoder__low_threshold=None).decode(p)
    assert len(single) == 2


def test_low_threshold_above_the_threshold_is_refused(fitted_sed, tiny_dataset):
    sed = copy.deepcopy(fitted_sed).set_params(
        decoder=Decoder(threshold=0.5, low_threshold=0.7)
    )
    with pytest.raises(ValueError, match="low_threshold must be at most"):
        sed.predict_events(tiny_dataset["F"][:1])


def test_memory_with_validation_trains_as_without_memory(tiny_dataset, tmp_path):
    """Check a cached fit with held-out validation clips keeps the epoch and
    weights of the uncached fit (the cached training once scored events under
    class indices instead of the class names and raised), and that another
    threshold, which scores the epochs differently, is not served from the
    cache."""
    d = tiny_dataset
    F, y_weak, y_strong = d["F"][:32], d["y_weak"][:32], d["y_strong"][:32]
    params = {**FAST, "n_filters": 4, "max_epochs": 3, "validation_fraction": 0.25}
    best = []
    for threshold in (0.5, 0.3):  # best epochs 1 and 4 here
        decoder = Decoder(threshold=threshold)
        plain = PseudoLabelSED(**params, decoder=decoder).fit(F, y_weak, y_strong)
        cached = PseudoLabelSED(**params, decoder=decoder, memory=str(tmp_path))
        cached.fit(F, y_weak, y_strong)
        best.append(plain.best_epoch_)
        assert cached.best_epoch_ == plain.best_epoch_
        assert cached.validation_f1_ == pytest.approx(plain.validation_f1_)
        np.testing.assert_allclose(
            cached.predict_frames(d["F_test"]), plain.predict_frames(d["F_test"])
        )
    assert best[0] != best[1]  # the second fit could not be the first's
