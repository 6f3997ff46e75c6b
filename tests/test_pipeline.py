import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline as SkPipeline

from sklearn_sed import Decoder, LogMelExtractor, PseudoLabelSED
from sklearn_sed import estimator as estimator_module
from sklearn_sed.labels import combine_labels
from sklearn_sed.metrics.scoring import (
    event_based_f1,
    event_f1_scorer,
    segment_f1_scorer,
)
from sklearn_sed.pipeline import Pipeline, make_pipeline
from tests.conftest import FAST_SED as FAST
from tests.conftest import TINY_FEATURES


class CountingExtractor(LogMelExtractor):
    """LogMelExtractor that counts how often features are computed."""

    n_fit_transform = 0

    def fit_transform(self, X, y=None):
        type(self).n_fit_transform += 1
        return super().fit_transform(X, y)


@pytest.fixture
def audio(tiny_dataset):
    d = tiny_dataset
    return d["audio"][:16], d["y_weak"][:16], d["y_strong"][:16]


def test_pipeline_card_call_positional_and_keyword(audio):
    """Check Pipeline([...]).fit(X, y_weak, y_strong) works both ways."""
    X, y_weak, y_strong = audio
    steps = [
        ("logmel", LogMelExtractor(**TINY_FEATURES)),
        ("sed", PseudoLabelSED(**FAST)),
    ]
    a = Pipeline(steps).fit(X, y_weak, y_strong)
    b = Pipeline(steps).fit(X, y_weak=y_weak, y_strong=y_strong)
    assert a[-1].n_strong_ == b[-1].n_strong_ == sum(s is not None for s in y_strong)
    np.testing.assert_array_equal(a.predict_frames(X), b.predict_frames(X))
    assert len(a.predict_events(X)) == len(X)
    assert a.predict(X).shape == (len(X), 2)


def test_make_pipeline_names_steps(audio):
    """Check make_pipeline gives the lower-case class names."""
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST))
    assert [name for name, _ in pipe.steps] == ["logmelextractor", "pseudolabelsed"]


def test_sklearn_pipeline_with_step_prefix(audio):
    """Check scikit-learn's own Pipeline with pseudolabelsed__y_strong=."""
    X, y_weak, y_strong = audio
    pipe = SkPipeline(
        [
            ("logmelextractor", LogMelExtractor(**TINY_FEATURES)),
            ("pseudolabelsed", PseudoLabelSED(**FAST)),
        ]
    )
    pipe.fit(X, y_weak, pseudolabelsed__y_strong=y_strong)
    assert pipe[-1].n_strong_ == sum(s is not None for s in y_strong)
    # The scorers reach predict_events through a plain Pipeline too.
    assert 0.0 <= event_f1_scorer(pipe, X, y_strong) <= 1.0


def test_sklearn_pipeline_with_metadata_routing(audio):
    """Check scikit-learn's Pipeline routes y_strong with routing enabled."""
    X, y_weak, y_strong = audio
    with sklearn.config_context(enable_metadata_routing=True):
        sed = PseudoLabelSED(**FAST).set_fit_request(y_strong=True)
        pipe = SkPipeline([("logmel", LogMelExtractor(**TINY_FEATURES)), ("sed", sed)])
        pipe.fit(X, y_weak, y_strong=y_strong)
    assert pipe[-1].n_strong_ == sum(s is not None for s in y_strong)


def test_scorer_equals_sed_eval_on_same_events(fitted_sed, tiny_dataset):
    """Check the scorer's value is event_based_f1 (sed_eval) on the same events."""
    F, y = tiny_dataset["F_test"], tiny_dataset["y_test"]
    expected = event_based_f1(
        y, fitted_sed.predict_events(F), classes=fitted_sed.classes_
    )
    assert event_f1_scorer(fitted_sed, F, y) == expected
    assert fitted_sed.score(F, y) == expected


def test_scorer_skips_weak_only_clips(fitted_sed, tiny_dataset):
    """Check clips without events in y (None) are left out of scoring."""
    F, y = tiny_dataset["F_test"], tiny_dataset["y_test"]
    y_partial = [None if i % 2 else ev for i, ev in enumerate(y)]
    expected = event_based_f1(
        y[::2], fitted_sed.predict_events(F[::2]), classes=fitted_sed.classes_
    )
    assert event_f1_scorer(fitted_sed, F, y_partial) == expected
    combined = combine_labels([["x"]] * len(y), y_partial)
    assert event_f1_scorer(fitted_sed, F, combined) == expected


def test_scorer_refuses_weak_labels_with_remedy(fitted_sed, tiny_dataset):
    """Check scoring against weak labels explains what to pass."""
    with pytest.raises(ValueError, match=r"Got \['Blender'\].*combine_labels"):
        event_f1_scorer(fitted_sed, tiny_dataset["F_test"][:2], [["Blender"], []])


def test_grid_search_over_postprocessing_trains_once_per_fold(
    audio, tmp_path, monkeypatch
):
    """Check a k-point post-processing grid on f folds costs f trainings (+1
    refit) and f forward passes."""
    X, y_weak, y_strong = audio
    F = LogMelExtractor(**TINY_FEATURES).fit_transform(X)
    y = combine_labels(y_weak, y_strong)
    sed = PseudoLabelSED(**FAST, decoder=Decoder(), memory=str(tmp_path / "cache"))
    grid = {
        "decoder__threshold": [0.3, 0.5, 0.7],
        "decoder__median_filter_sec": [0.0, 0.2],
        "decoder__order": ["threshold_first", "filter_first"],
    }
    predictions, forward = [], estimator_module._forward

    def counting(net, X, indices, batch_size, dtype="float32", **kwargs):
        if indices is None:  # prediction (pseudo labelling passes indices)
            predictions.append(len(X))
        return forward(net, X, indices, batch_size, dtype=dtype, **kwargs)

    monkeypatch.setattr(estimator_module, "_forward", counting)
    trainings = _count_trainings(monkeypatch)
    search = GridSearchCV(sed, grid, cv=KFold(2), scoring=event_f1_scorer)
    search.fit(F, y)
    trainings = len(trainings)
    assert len(search.cv_results_["params"]) == 12
    assert trainings == 2 + 1  # one per fold, one refit on all data
    # 24 scorings (12 settings x 2 folds), one forward pass per test fold
    # (over its strongly labelled clips, the ones event F1 scores).
    assert len(predictions) == 2


def test_cached_predictions_are_keyed_on_the_weights(audio, tmp_path):
    """Check that with `memory` two differently trained networks sharing one
    cache each get their own probabilities, equal to uncached ones."""
    X, y_weak, y_strong = audio
    F = LogMelExtractor(**TINY_FEATURES).fit_transform(X)
    cache = str(tmp_path / "cache")
    seen = {}
    for seed in (0, 1, 0):
        sed = PseudoLabelSED(**{**FAST, "random_state": seed}, memory=cache)
        sed.fit(F, y_weak, y_strong)
        cached = sed.predict_frames(F)
        np.testing.assert_array_equal(cached, sed.predict_frames(F))
        np.testing.assert_array_equal(
            cached, sed.set_params(memory=None).predict_frames(F)
        )
        seen.setdefault(seed, cached)
    assert not np.array_equal(seen[0], seen[1])


def test_grid_search_per_class_threshold_and_hysteresis(audio, tmp_path, monkeypatch):
    """Check per-class thresholds and hysteresis are tunable without retraining."""
    X, y_weak, y_strong = audio
    F = LogMelExtractor(**TINY_FEATURES).fit_transform(X)
    sed = PseudoLabelSED(**FAST, decoder=Decoder(), memory=str(tmp_path / "cache"))
    grid = {
        "decoder__threshold": [[0.3, 0.5], [0.5, 0.3]],
        "decoder__low_threshold": [None, 0.2],
    }
    trainings = _count_trainings(monkeypatch)
    GridSearchCV(sed, grid, cv=KFold(2), scoring=segment_f1_scorer, refit=False).fit(
        F, combine_labels(y_weak, y_strong)
    )
    assert len(trainings) == 2


def test_grid_search_over_training_params_with_pipeline_memory(audio, tmp_path):
    """Check retraining params tune through one call and features are computed
    once per fold with Pipeline(memory=...)."""
    X, y_weak, y_strong = audio
    pipe = make_pipeline(
        CountingExtractor(**TINY_FEATURES),
        PseudoLabelSED(**FAST),
        memory=str(tmp_path / "features"),
    )
    grid = [
        {"pseudolabelsed__pseudo_labels__delta": [0.05, 0.2]},
        {"pseudolabelsed__pseudo_labels": [None]},  # stage 1 only
    ]
    CountingExtractor.n_fit_transform = 0
    search = GridSearchCV(pipe, grid, cv=KFold(2), scoring=event_f1_scorer)
    search.fit(X, combine_labels(y_weak, y_strong))
    assert CountingExtractor.n_fit_transform == 2 + 1  # per fold, plus the refit
    assert len(search.cv_results_["params"]) == 3
    assert set(search.best_params_) in [set(g) for g in grid]


def test_cross_validate_with_both_scorers(audio):
    """Check cross_validate takes the SED scorers."""
    X, y_weak, y_strong = audio
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST))
    res = cross_validate(
        pipe,
        X,
        combine_labels(y_weak, y_strong),
        cv=KFold(2),
        scoring={"event": event_f1_scorer, "segment": segment_f1_scorer},
    )
    assert res["test_event"].shape == (2,)
    assert np.all((res["test_segment"] >= 0) & (res["test_segment"] <= 1))


def test_scorer_as_skorch_epoch_scoring(tiny_dataset):
    """Check event_f1_scorer works as a skorch EpochScoring callback."""
    from skorch.callbacks import EpochScoring

    d = tiny_dataset
    cb = EpochScoring(
        event_f1_scorer,
        on_train=True,
        use_caching=False,
        name="train_event_f1",
        lower_is_better=False,
    )
    sed = PseudoLabelSED(**FAST, callbacks=[cb])
    sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    scores = sed.net_.history[:, "train_event_f1"]
    assert len(scores) == 2  # one stage-1 epoch, one stage-2 epoch
    assert all(0.0 <= s <= 1.0 for s in scores)


def _count_trainings(monkeypatch):
    """Spy on PseudoLabelSED._train: the list grows by one per real training
    (a joblib.Memory cache hit does not train)."""
    calls, train = [], PseudoLabelSED._train

    def counting(self, *args, **kwargs):
        calls.append(1)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(PseudoLabelSED, "_train", counting)
    return calls


def test_long_recordings_are_windowed_or_refused_never_cut(audio, tmp_path):
    """Check a file three clips long gets events over its whole length from
    predict_events (windowed and stitched, as predict_file_events), and that
    the fixed-shape paths refuse it instead of cutting it to one clip."""
    import soundfile as sf

    from sklearn_sed.inference import predict_file_events

    X, y_weak, y_strong = audio
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST))
    pipe.fit(X, y_weak, y_strong)
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate(X[:3]), TINY_FEATURES["sr"])
    short = tmp_path / "short.wav"
    sf.write(short, X[0], TINY_FEATURES["sr"])
    pipe[-1].set_params(
        decoder=Decoder(threshold=0.05)
    )  # so that events exist to compare
    events = pipe.predict_events([str(short), str(long)])
    assert events[1] == predict_file_events(pipe, long)
    assert events[0] == pipe.predict_events([str(short)])[0]
    assert max(off for _, off, _ in events[1]) > pipe[-1].duration
    for method in ("predict", "predict_proba", "predict_frames"):
        with pytest.raises(ValueError, match=r"X\[0\] is 6\.0 s long"):
            getattr(pipe, method)([str(long)])
    with pytest.raises(ValueError, match="waveform"):
        pipe.predict_events([np.concatenate(X[:3])])
