"""Pseudo labels drawn by another model: ``PseudoLabelSchedule(teacher=...)``."""

import functools

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.frozen import FrozenEstimator
from skorch.callbacks import Callback

from sklearn_sed import PseudoLabelSchedule, PseudoLabelSED, load, save
from sklearn_sed.labels import weak_labels_of
from sklearn_sed.networks.crnn import CRNN
from sklearn_sed.training.pseudo_labels import select_pseudo_labels
from tests.conftest import FAST_SED

FAST = dict(FAST_SED, pseudo_labels=PseudoLabelSchedule(max_iter=2, delta=0.2))


def _taught(teacher, **schedule):
    """FAST whose pseudo labels ``teacher`` draws (``schedule``: other fields)."""
    return dict(
        FAST,
        pseudo_labels=PseudoLabelSchedule(
            max_iter=2, delta=0.2, teacher=teacher, **schedule
        ),
    )


class GridTeacher(BaseEstimator):
    """A teacher whose probabilities are read off the features: class ``k``'s
    frame probability is the mean of mel band ``k`` over the frame's span.
    It records what ``fit`` saw."""

    def __init__(self, classes=None, n_frames=4):
        self.classes = classes
        self.n_frames = n_frames

    def fit(self, X, y_weak, y_strong=None, *, X_val=None, y_val=None):
        self.classes_ = np.asarray(
            sorted({c for labels in y_weak for c in labels})
            if self.classes is None
            else self.classes
        )
        self.n_fit_ = len(X)
        self.n_val_ = None if X_val is None else len(X_val)
        self.y_weak_ = [sorted(labels) for labels in y_weak]
        self.y_strong_ = y_strong
        return self

    def predict_frames(self, X):
        X = np.asarray(X)
        spans = np.array_split(np.arange(X.shape[1]), self.n_frames)
        k = len(self.classes_)
        return np.stack([X[:, s, :k].mean(axis=1) for s in spans], axis=1)

    def predict_proba(self, X):
        return self.predict_frames(X).max(axis=1)


class _Spy(Callback):
    def __init__(self):
        self.calls = []

    def on_pseudo_labels(self, net, *, threshold, clip_index, frame_labels, **kw):
        self.calls.append((threshold, np.array(clip_index), np.array(frame_labels)))


def _nearest(frames, n_out):
    """The teacher's frames at ``n_out`` frames: the nearest of its grid."""
    n_in = frames.shape[1]
    return frames[:, ((np.arange(n_out) + 0.5) * n_in // n_out).astype(int)]


def _weak_rows(d, n):
    strong = np.array([s is not None for s in d["y_strong"][:n]])
    return np.flatnonzero(~strong)


def _weak_matrix(classes, y_weak, weak):
    """0/1 weak labels of the clips ``weak``, columns in ``classes``."""
    return np.array([[c in labels for c in classes] for labels in y_weak])[weak]


def _selecting_threshold(clip_probs, Y):
    """A threshold at which the clip prediction of at least one clip equals
    its weak label (present classes at or above it, absent ones below): the
    middle of the widest such interval, so that a check of the pseudo labels
    has selected clips to compare."""
    low = np.where(Y, 0.0, clip_probs).max(axis=1)  # above every absent class
    high = np.where(Y, clip_probs, 1.0).min(axis=1)  # at most every present one
    best = np.argmax(high - low)
    assert high[best] > low[best], "no threshold selects any clip"
    return float((low[best] + high[best]) / 2)


def _assert_labels_are_eq4_of(probs, spy, sed, y_weak, weak):
    """Check the two relabellings that ``spy`` saw are eqs. 4-5 applied to
    ``probs``: per relabelling, ``(clip_probs, frame_probs)`` of the weak
    clips ``weak``."""
    Y = _weak_matrix(sed.classes_, y_weak, weak)
    assert len(spy.calls) == 2
    for (threshold, clip_index, frame_labels), (clips, frames) in zip(
        spy.calls, probs, strict=True
    ):
        selected, expected = select_pseudo_labels(clips, frames, Y, threshold=threshold)
        np.testing.assert_array_equal(clip_index, weak[selected])
        np.testing.assert_array_equal(frame_labels, expected[selected])


def test_teacher_probabilities_make_every_iterations_pseudo_labels(tiny_dataset):
    """Check the pseudo labels of each iteration are eqs. 4-5 applied to the
    teacher's probabilities (its selection and its frames), not the
    network's."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    spy = _Spy()
    sed = PseudoLabelSED(**_taught(GridTeacher()), callbacks=[spy])
    sed.fit(X, y_weak, y_strong)
    weak = _weak_rows(d, 16)
    teacher = sed.teacher_
    frames = _nearest(teacher.predict_frames(X[weak]), sed.n_frames_out_)
    _assert_labels_are_eq4_of(
        [(frames.max(axis=1), frames)] * 2, spy, sed, y_weak, weak
    )
    assert all(len(clip_index) for _, clip_index, _ in spy.calls)


def test_teacher_is_cloned_and_fitted_on_the_training_clips_only(tiny_dataset):
    """Check the teacher given is left unfitted, and its clone trains on the
    clips that the network trains on and validates on the same clips."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    given = GridTeacher()
    sed = PseudoLabelSED(**_taught(given), validation_fraction=0.25)
    sed.fit(X, y_weak, y_strong)
    assert not hasattr(given, "classes_")
    n_strong = sum(s is not None for s in y_strong)
    n_val = round(0.25 * n_strong)
    assert sed.teacher_ is not given
    assert (sed.teacher_.n_fit_, sed.teacher_.n_val_) == (16 - n_val, n_val)
    assert sed.n_strong_ + sed.n_weak_ == sed.teacher_.n_fit_
    # Its labels are the training clips' own, strong events included.
    strong_seen = [s for s in sed.teacher_.y_strong_ if s is not None]
    assert len(strong_seen) == n_strong - n_val
    seen = zip(sed.teacher_.y_strong_, sed.teacher_.y_weak_, strict=True)
    for events, labels in seen:
        if events is not None:
            assert sorted(weak_labels_of(events)) == labels


def test_frozen_teacher_is_used_as_it_is(tiny_dataset):
    """Check a teacher wrapped in FrozenEstimator is not fitted again."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    fitted = GridTeacher().fit(X[:3], y_weak, y_strong)
    sed = PseudoLabelSED(**_taught(FrozenEstimator(fitted)))
    sed.fit(X, y_weak, y_strong)
    assert sed.teacher_.estimator is fitted
    assert fitted.n_fit_ == 3


def test_teacher_frames_are_resampled_to_the_networks(tiny_dataset):
    """Check a teacher with another frame rate gives labels at the network's
    frame rate (nearest frame)."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    spy = _Spy()
    sed = PseudoLabelSED(**_taught(GridTeacher(n_frames=3)), callbacks=[spy])
    sed.fit(X, y_weak, y_strong)
    n_out = sed.n_frames_out_
    assert n_out != 3
    for _, _, frame_labels in spy.calls:
        assert frame_labels.shape[1:] == (n_out, len(sed.classes_))
    threshold, clip_index, frame_labels = spy.calls[-1]
    teacher_frames = _nearest(sed.teacher_.predict_frames(X[clip_index]), n_out)
    assert (teacher_frames[:, :3] == teacher_frames[:, :1]).all()  # held frames
    expected = (teacher_frames >= threshold).astype(np.float32)
    np.testing.assert_array_equal(frame_labels, expected)


def test_teacher_without_a_class_is_refused_with_the_fix(tiny_dataset):
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    classes = sorted({c for labels in y_weak for c in labels})
    sed = PseudoLabelSED(**_taught(GridTeacher(classes=classes[:1])))
    with pytest.raises(ValueError, match=r"not \[.*\].*Consider passing classes="):
        sed.fit(X, y_weak, y_strong)


def test_teacher_must_predict_frames(tiny_dataset):
    d = tiny_dataset
    sed = PseudoLabelSED(**_taught(object()))
    with pytest.raises(ValueError, match="teacher"):
        sed.fit(d["F"][:4], d["y_weak"][:4], d["y_strong"][:4])


def test_no_teacher_is_fitted_without_stage_two(tiny_dataset):
    d = tiny_dataset
    given = GridTeacher()
    sed = PseudoLabelSED(**dict(_taught(given), pseudo_labels=None))
    sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    assert sed.teacher_ is None


def test_crnn_teacher_trains_a_resnet_that_saves_and_loads(tiny_dataset, tmp_path):
    """Check the intended use: a CRNN PseudoLabelSED teaches the ResNet; its
    parameters reach the clone through set_params (grid search), and the
    model file keeps the student only."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    crnn = PseudoLabelSED(
        functools.partial(CRNN, n_filters=4, hidden_size=4, n_mels=X.shape[2]),
        **dict(FAST, pseudo_labels=None),
    )
    sed = clone(PseudoLabelSED(**_taught(crnn)))
    sed.set_params(pseudo_labels__teacher__lr=0.01)
    assert sed.get_params()["pseudo_labels__teacher__lr"] == 0.01
    assert crnn.lr != 0.01  # clone copied the teacher, deep
    sed.fit(X, y_weak, y_strong)
    assert sed.teacher_.lr == 0.01
    assert isinstance(sed.teacher_.net_.module_, CRNN)
    assert len(sed.pseudo_label_history_) == 2
    path = tmp_path / "student.sed"
    save(sed, path)
    loaded = load(path)
    assert loaded.pseudo_labels.teacher is None
    np.testing.assert_allclose(
        loaded.predict_frames(X[:2]), sed.predict_frames(X[:2]), atol=1e-6
    )


def test_library_teacher_labels_come_from_one_forward_pass(tiny_dataset):
    """Check a PseudoLabelSED teacher (here frozen) gives its frame and clip
    probabilities of the weak clips in one forward pass, and that the pseudo
    labels are eq. 4 applied to those frame probabilities."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    fitted = PseudoLabelSED(
        functools.partial(CRNN, n_filters=4, hidden_size=4, n_mels=X.shape[2]),
        **dict(FAST, pseudo_labels=None),
    ).fit(X, y_weak, y_strong)
    passes = []
    forward = fitted._forward_all

    def counting(X_):
        passes.append(len(X_))
        return forward(X_)

    weak = _weak_rows(d, 16)
    frames = fitted.predict_frames(X[weak])
    clips = fitted.predict_proba(X[weak])
    theta = _selecting_threshold(clips, _weak_matrix(fitted.classes_, y_weak, weak))
    fitted._forward_all = counting
    spy = _Spy()
    sed = PseudoLabelSED(
        **_taught(
            FrozenEstimator(fitted), threshold_start=theta, threshold_floor=theta
        ),
        callbacks=[spy],
    )
    sed.fit(X, y_weak, y_strong)
    assert passes == [len(weak)]
    frames = _nearest(frames, sed.n_frames_out_)
    _assert_labels_are_eq4_of([(clips, frames)] * 2, spy, sed, y_weak, weak)
    assert all(len(clip_index) for _, clip_index, _ in spy.calls)


class _FitsACopy(BaseEstimator):
    """A meta-estimator as scikit-learn writes them: ``estimator`` stays
    unfitted, the fitted copy is ``estimator_``."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y_weak, y_strong=None, **kwargs):
        self.estimator_ = clone(self.estimator).fit(X, y_weak, y_strong, **kwargs)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_frames(self, X):
        return self.estimator_.predict_frames(X)

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)


def test_teacher_whose_estimator_attribute_is_unfitted_labels_through_its_methods(
    tiny_dataset,
):
    """Check only a FrozenEstimator's inner model is read directly: a
    meta-estimator teacher whose ``estimator`` is the unfitted template is
    asked through its own predict_frames/predict_proba."""
    d = tiny_dataset
    X, y_weak, y_strong = d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    crnn = PseudoLabelSED(
        functools.partial(CRNN, n_filters=4, hidden_size=4, n_mels=X.shape[2]),
        **dict(FAST, pseudo_labels=None),
    )
    weak = _weak_rows(d, 16)
    alike = clone(crnn).fit(X, y_weak, y_strong)  # what the teacher will predict
    Y = _weak_matrix(alike.classes_, y_weak, weak)
    theta = _selecting_threshold(alike.predict_proba(X[weak]), Y)
    spy = _Spy()
    sed = PseudoLabelSED(
        **_taught(_FitsACopy(crnn), threshold_start=theta, threshold_floor=theta),
        callbacks=[spy],
    )
    sed.fit(X, y_weak, y_strong)
    fitted = sed.teacher_.estimator_
    frames = _nearest(fitted.predict_frames(X[weak]), sed.n_frames_out_)
    clips = fitted.predict_proba(X[weak])
    _assert_labels_are_eq4_of([(clips, frames)] * 2, spy, sed, y_weak, weak)
    assert all(len(clip_index) for _, clip_index, _ in spy.calls)
