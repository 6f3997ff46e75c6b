"""Model selection as a scikit-learn user writes it first: y_weak and y_strong
passed separately, the SED scorers, metadata routing, and scikit-learn's own
Pipeline."""

import functools
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline as SkPipeline

from sklearn_sed import (
    Decoder,
    LogMelExtractor,
    Pipeline,
    PseudoLabelSED,
    event_f1_scorer,
    make_pipeline,
    segment_f1_scorer,
)
from sklearn_sed.labels import combine_labels
from tests.conftest import FAST_SED, TINY_FEATURES

N = 16  # clips; 2 folds of 8


@pytest.fixture(scope="module")
def features(tiny_dataset):
    d = tiny_dataset
    return d["F"][:N], d["y_weak"][:N], d["y_strong"][:N]


def test_grid_search_with_routing_scores_every_fold_against_y_strong(features):
    """Check GridSearchCV(...).fit(X, y_weak, y_strong=...) with metadata routing
    gives finite scores: the scorer and fit both request y_strong by default."""
    F, y_weak, y_strong = features
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            PseudoLabelSED(**FAST_SED, decoder=Decoder()),
            {"decoder__threshold": [0.3, 0.7]},
            cv=KFold(2),
            scoring=event_f1_scorer,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no "Scoring failed"
            search.fit(F, y_weak, y_strong=y_strong)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    # The same score by hand on fold 2 (trained on fold 1).
    threshold = search.best_params_["decoder__threshold"]
    sed = PseudoLabelSED(**FAST_SED, decoder=Decoder(threshold=threshold))
    sed.fit(F[:8], y_weak[:8], y_strong[:8])
    by_hand = event_f1_scorer(sed, F[8:], y_strong[8:])
    best = search.best_index_
    assert search.cv_results_["split1_test_score"][best] == pytest.approx(by_hand)


def test_routing_scores_equal_combined_label_scores(features):
    """Check the routed call and the combine_labels call give the same scores."""
    F, y_weak, y_strong = features
    plain = cross_val_score(
        PseudoLabelSED(**FAST_SED),
        F,
        combine_labels(y_weak, y_strong),
        cv=KFold(2),
        scoring=segment_f1_scorer,
    )
    with sklearn.config_context(enable_metadata_routing=True):
        routed = cross_val_score(
            PseudoLabelSED(**FAST_SED),
            F,
            y_weak,
            cv=KFold(2),
            scoring=segment_f1_scorer,
            params={"y_strong": y_strong},
        )
    np.testing.assert_allclose(routed, plain)


def test_grid_search_on_library_pipeline_with_routing(tiny_dataset):
    """Check the library's Pipeline routes y_strong to its final step under
    routing, inside GridSearchCV, with finite scores."""
    d = tiny_dataset
    X, y_weak, y_strong = d["audio"][:N], d["y_weak"][:N], d["y_strong"][:N]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(
            LogMelExtractor(**TINY_FEATURES),
            PseudoLabelSED(**FAST_SED, decoder=Decoder()),
        )
        search = GridSearchCV(
            pipe,
            {"pseudolabelsed__decoder__threshold": [0.3, 0.5]},
            cv=KFold(2),
            scoring=event_f1_scorer,
        )
        search.fit(X, y_weak, y_strong=y_strong)
        # and the design card's call, routed
        Pipeline(
            [
                ("logmel", LogMelExtractor(**TINY_FEATURES)),
                ("sed", PseudoLabelSED(**FAST_SED)),
            ]
        ).fit(X, y_weak, y_strong)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_scorer_without_routing_refuses_weak_labels_with_the_fix(features):
    """Check that without routing the scorer, given y_weak as reference, raises
    a ValueError that names both fixes (and GridSearchCV's NaN warning carries
    it)."""
    F, y_weak, y_strong = features
    search = GridSearchCV(
        PseudoLabelSED(**FAST_SED, decoder=Decoder()),
        {"decoder__threshold": [0.5]},
        cv=KFold(2),
        scoring=event_f1_scorer,
        error_score="raise",
    )
    with pytest.raises(ValueError, match=r"combine_labels.*enable_metadata_routing"):
        search.fit(F, y_weak, y_strong=y_strong)
    indicator = np.array([[1, 0]] * len(y_weak))
    sed = PseudoLabelSED(**FAST_SED).fit(F, y_weak, y_strong)
    with pytest.raises(ValueError, match="weak labels"):
        event_f1_scorer(sed, F, indicator)


def test_scorer_request_can_be_changed_and_is_reported(features):
    """Check set_score_request returns a scorer whose routing reflects it."""
    from sklearn.utils.metadata_routing import get_routing_for_object

    req = get_routing_for_object(event_f1_scorer)
    assert req.score.requests["y_strong"] is True
    with sklearn.config_context(enable_metadata_routing=True):
        off = event_f1_scorer.set_score_request(y_strong=False)
    assert get_routing_for_object(off).score.requests["y_strong"] is False
    assert get_routing_for_object(event_f1_scorer).score.requests["y_strong"] is True
    with pytest.raises(ValueError, match="y_strong must be"):
        event_f1_scorer.set_score_request(y_strong=3)


def test_psds_scorer_works_on_scikit_learn_pipeline(tiny_dataset, fitted_sed):
    """Check psds_scorer takes scikit-learn's own Pipeline (no predict_frames)
    and scores it as the library's Pipeline."""
    pytest.importorskip("sed_scores_eval")
    from sklearn_sed.metrics.psds import PSDSScorer, psds_scorer

    d = tiny_dataset
    ext = LogMelExtractor(**TINY_FEATURES).fit(d["audio"])
    sk = SkPipeline([("logmel", ext), ("sed", fitted_sed)])
    ours = Pipeline([("logmel", ext), ("sed", fitted_sed)])
    a = psds_scorer(sk, d["audio_test"], d["y_test"])
    b = psds_scorer(ours, d["audio_test"], d["y_test"])
    assert a == pytest.approx(b)
    assert 0.0 <= a <= 1.0
    two = PSDSScorer(scenario=2)(sk, d["audio_test"], d["y_test"])
    assert two == pytest.approx(
        functools.partial(psds_scorer, scenario=2)(sk, d["audio_test"], d["y_test"])
    )


class _CountingSED(PseudoLabelSED):
    fits = 0

    def fit(self, X, y_weak, y_strong=None, **kwargs):
        type(self).fits += 1
        return super().fit(X, y_weak, y_strong, **kwargs)


def test_tuned_postprocessing_cv_matches_tuning_by_hand(features):
    """Check TunedPostprocessingCV trains one network per fold plus one refit,
    and chooses what tune_postprocessing chooses on the out-of-fold
    probabilities computed by hand; the refit decodes with that choice."""
    from sklearn_sed.decoding.cv import TunedPostprocessingCV
    from sklearn_sed.decoding.tuning import tune_postprocessing

    F, y_weak, y_strong = features
    grid = dict(thresholds=(0.2, 0.5), median_filters=(0.0, 0.3))
    _CountingSED.fits = 0
    tuned = TunedPostprocessingCV(_CountingSED(**FAST_SED), cv=KFold(2), **grid)
    tuned.fit(F, y_weak, y_strong)
    assert _CountingSED.fits == 3
    frames, refs = [], []
    for train, test in KFold(2).split(F):
        sed = PseudoLabelSED(**FAST_SED).fit(
            F[train], [y_weak[i] for i in train], [y_strong[i] for i in train]
        )
        keep = [i for i in test if y_strong[i] is not None]
        frames.append(sed.predict_frames(F[keep]))
        refs += [y_strong[i] for i in keep]
    thr, med, _low, f1 = tune_postprocessing(
        np.concatenate(frames),
        refs,
        classes=tuned.classes_,
        duration=FAST_SED["duration"],
        **grid,
    )
    np.testing.assert_array_equal(tuned.threshold_, thr)
    np.testing.assert_array_equal(tuned.median_filter_sec_, med)
    assert tuned.best_score_ == pytest.approx(f1.mean())
    np.testing.assert_array_equal(tuned.estimator_.threshold_, thr)
    decoder = Decoder(threshold=thr.tolist(), median_filter_sec=med.tolist())
    by_hand = PseudoLabelSED(**FAST_SED, decoder=decoder).fit(F, y_weak, y_strong)
    assert tuned.predict_events(F) == by_hand.predict_events(F)


def test_tuned_postprocessing_cv_on_a_pipeline_and_combined_labels(tiny_dataset):
    """Check it tunes the last step of a Pipeline, takes combine_labels output,
    and refuses labels without strong clips."""
    from sklearn_sed.decoding.cv import TunedPostprocessingCV

    d = tiny_dataset
    X, y_weak, y_strong = d["audio"][:N], d["y_weak"][:N], d["y_strong"][:N]
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST_SED))
    tuned = TunedPostprocessingCV(
        pipe, cv=2, thresholds=(0.3,), median_filters=(0.0,), refit=False
    ).fit(X, combine_labels(y_weak, y_strong))
    params = tuned.estimator_.get_params()
    assert params["pseudolabelsed__decoder__threshold"] == [0.3] * len(tuned.classes_)
    assert len(tuned.predict_events(X[:2])) == 2
    with pytest.raises(ValueError, match="needs strong labels"):
        TunedPostprocessingCV(PseudoLabelSED(**FAST_SED)).fit(d["F"][:N], y_weak)
