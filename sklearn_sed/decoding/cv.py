"""Post-processing chosen by cross-validation, the scikit-learn way.

:class:`TunedPostprocessingCV` is to a sound event detector what
:class:`sklearn.model_selection.TunedThresholdClassifierCV` is to a binary
classifier (which cannot take a multi-label, event-scored detector): it fits
one network per fold, gathers the out-of-fold frame probabilities of the
strongly labelled clips, chooses a threshold and a median-filter length per
class on them (:func:`~sklearn_sed.decoding.tuning.tune_postprocessing`), and refits
once on all the data with that choice. No cache setting is needed: each
network is trained once.
"""

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.model_selection import check_cv
from sklearn.utils.metaestimators import available_if

from sklearn_sed._validation import check_n_clips
from sklearn_sed.decoding.decode import Decoder
from sklearn_sed.decoding.tuning import (
    MEDIAN_FILTER_GRID,
    THRESHOLD_GRID,
    tune_postprocessing,
)
from sklearn_sed.labels import is_combined, is_unlabeled, split_labels
from sklearn_sed.metrics.scoring import (
    call_final,
    final_estimator,
    reference_events,
    take_clips,
)

__all__ = ["TunedPostprocessingCV"]


def _param_prefix(estimator):
    return f"{estimator.steps[-1][0]}__" if hasattr(estimator, "steps") else ""


def _all_classes(y_weak, y_strong):
    """Return the sorted class labels of weak and strong labels together.

    ``y_weak`` holds label collections (or ``None``); an indicator matrix
    needs no class list (its columns are the classes) and gives ``None``.
    """
    if hasattr(y_weak, "shape") and np.ndim(y_weak) == 2:
        return None
    labels = {
        c
        for clip in y_weak
        if clip is not None and not is_unlabeled(clip)
        for c in clip
    }
    labels |= {e[2] for clip in y_strong if clip is not None for e in clip}
    return sorted(labels)


def _estimator_has(attr):
    def check(self):
        return hasattr(self.estimator_, attr)

    return check


class TunedPostprocessingCV(MetaEstimatorMixin, BaseEstimator):
    """Per-class thresholds and median filters chosen by cross-validation.

    Parameters
    ----------
    estimator : PseudoLabelSED or Pipeline ending in one
        The detector to tune; cloned for every fold and for the refit.
    cv : int, cross-validation generator or iterable, default=3
        Folds, as in scikit-learn (``KFold(cv)`` for an int: the clips of a
        multi-label target cannot be stratified).
    thresholds : sequence of float, default=THRESHOLD_GRID
        Decision thresholds tried per class.
    median_filters : sequence of float, default=MEDIAN_FILTER_GRID
        Median-filter lengths tried per class, in seconds.
    low_ratios : sequence of float, default=(1.0,)
        Hysteresis tried per class: the low threshold as a fraction of the
        threshold (1.0 is single thresholding; ``LOW_RATIO_GRID`` is the
        estimator's final tuning).
    refit : bool, default=True
        Refit on all the data with the chosen post-processing. False keeps
        the last fold's network (cheaper, trained on less data).

    Attributes
    ----------
    estimator_ : estimator
        The refitted detector, whose ``decoder`` holds the chosen per-class
        ``threshold``, ``median_filter_sec`` and ``low_threshold``.
    threshold_ : ndarray of shape (n_classes,)
        Chosen threshold per class.
    median_filter_sec_ : ndarray of shape (n_classes,)
        Chosen median-filter length per class, in seconds.
    low_threshold_ : ndarray of shape (n_classes,)
        Chosen hysteresis low threshold per class (equal to ``threshold_``
        for single thresholding).
    class_f1_ : ndarray of shape (n_classes,)
        Out-of-fold event-based F1 per class at the chosen setting.
    best_score_ : float
        Their mean (the out-of-fold event-based macro F1).
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    See Also
    --------
    sklearn_sed.decoding.tuning.tune_postprocessing : The per-class search.
    sklearn.model_selection.TunedThresholdClassifierCV : The binary analogue.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed import PseudoLabelSED
    >>> from sklearn_sed.decoding.cv import TunedPostprocessingCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((8, 32, 8), dtype=np.float32)
    >>> y_weak = [["a"], ["b"]] * 4
    >>> y_strong = [[(0.0, 0.5, "a")], [(0.5, 1.0, "b")]] * 4
    >>> sed = PseudoLabelSED(n_filters=2, n_blocks=1, max_epochs=1,
    ...                      pseudo_labels=None, duration=1.0, random_state=0)
    >>> tuned = TunedPostprocessingCV(sed, cv=2, thresholds=(0.3, 0.5),
    ...                               median_filters=(0.0,))
    >>> tuned.fit(X, y_weak, y_strong).threshold_.shape
    (2,)
    """

    def __init__(
        self,
        estimator,
        *,
        cv=3,
        thresholds=THRESHOLD_GRID,
        median_filters=MEDIAN_FILTER_GRID,
        low_ratios=(1.0,),
        refit=True,
    ):
        self.estimator = estimator
        self.cv = cv
        self.thresholds = thresholds
        self.median_filters = median_filters
        self.low_ratios = low_ratios
        self.refit = refit

    def fit(self, X, y_weak, y_strong=None):
        """Fit one detector per fold, choose the post-processing, refit.

        Parameters
        ----------
        X : array-like or list
            Features (or audio for a pipeline), one item per clip.
        y_weak : sequence
            Weak labels as ``fit`` takes them, or ``combine_labels(...)``
            output (then ``y_strong`` must be None).
        y_strong : sequence of (list of events or None), default=None
            Strong labels; the clips that have them are scored.

        Returns
        -------
        self : TunedPostprocessingCV
            Fitted.
        """
        if is_combined(y_weak):
            if y_strong is not None:
                raise ValueError(
                    "y_weak holds ClipLabels (weak and strong labels together) and "
                    "y_strong was given too. Pass one or the other."
                )
            y_weak, y_strong = split_labels(y_weak)
        if y_strong is None:
            raise ValueError(
                "TunedPostprocessingCV needs strong labels to score the folds. "
                "Got y_strong=None; pass y_strong (events per clip, None for "
                "weak-only clips) or combine_labels(y_weak, y_strong)."
            )
        check_n_clips(X, y_weak, name="y_weak")
        check_n_clips(X, y_strong, name="y_strong")
        n = len(X)
        cv = check_cv(self.cv)
        prefix = _param_prefix(self.estimator)
        # Every fold learns the class list of all the labels, as scikit-learn's
        # classifiers see every class through y: a fold that lacks a class
        # then still has its column, and the folds' outputs line up.
        fold_params = {}
        if self.estimator.get_params().get(f"{prefix}classes") is None:
            fold_params[f"{prefix}classes"] = _all_classes(y_weak, y_strong)
        frames, refs = [], []
        last_fold = None
        for train, test in cv.split(np.zeros(n)):
            refs_test, keep = reference_events([y_strong[i] for i in test])
            est = (
                clone(self.estimator)
                .set_params(**fold_params)
                .fit(
                    take_clips(X, train),
                    [y_weak[i] for i in train],
                    [y_strong[i] for i in train],
                )
            )
            last_fold = est
            X_test = take_clips(X, [test[k] for k in keep])
            frames.append(call_final(est, "predict_frames", X_test))
            refs.extend(refs_test)
        last = final_estimator(last_fold)
        self.classes_ = np.asarray(last.classes_)
        decoder = last.decoder if last.decoder is not None else Decoder()
        tuned = tune_postprocessing(
            np.concatenate(frames),
            refs,
            classes=self.classes_,
            duration=last.duration,
            thresholds=self.thresholds,
            median_filters=self.median_filters,
            low_ratios=self.low_ratios,
            order=decoder.order,
        )
        self.threshold_, self.median_filter_sec_, self.low_threshold_ = tuned[:3]
        self.class_f1_ = tuned[3]
        self.best_score_ = float(np.mean(self.class_f1_))
        chosen = {
            **fold_params,
            f"{prefix}decoder": Decoder(
                threshold=self.threshold_.tolist(),
                median_filter_sec=self.median_filter_sec_.tolist(),
                low_threshold=self.low_threshold_.tolist(),
                order=decoder.order,
            ),
        }
        if self.refit:
            self.estimator_ = clone(self.estimator).set_params(**chosen)
            self.estimator_.fit(X, y_weak, y_strong)
        else:
            self.estimator_ = last_fold.set_params(**chosen)
            det = final_estimator(self.estimator_)
            det.threshold_ = self.threshold_.copy()
            det.median_filter_sec_ = self.median_filter_sec_.copy()
            det.low_threshold_ = self.low_threshold_.copy()
        return self

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Clip-level labels of the tuned detector (indicator matrix)."""
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Clip probabilities of the tuned detector."""
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_frames"))
    def predict_frames(self, X):
        """Frame probabilities of the tuned detector."""
        return self.estimator_.predict_frames(X)

    @available_if(_estimator_has("predict_events"))
    def predict_events(self, X):
        """Events per clip, decoded with the chosen per-class settings."""
        return self.estimator_.predict_events(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y_strong):
        """Event-based macro F1 of the tuned detector on ``X``."""
        return self.estimator_.score(X, y_strong)
