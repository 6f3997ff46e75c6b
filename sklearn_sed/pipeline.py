"""A scikit-learn Pipeline that takes ``fit(X, y_weak, y_strong)``.

:class:`Pipeline` is :class:`sklearn.pipeline.Pipeline` plus two things: a
``y_strong`` argument to ``fit`` that goes to the final step, and the SED
prediction methods (``predict_frames``, ``predict_events``,
``score_segments``) of the final step. Everything else, ``memory`` caching of
the feature extraction included, is scikit-learn's own.
"""

from sklearn import pipeline as sk_pipeline
from sklearn.utils.metaestimators import available_if

__all__ = ["Pipeline", "make_pipeline"]


def _final_has(attr):
    def check(self):
        return hasattr(self._final_estimator, attr)

    return check


class Pipeline(sk_pipeline.Pipeline):
    """Pipeline whose ``fit`` takes ``(X, y_weak, y_strong)``.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        Transformers followed by a final estimator, e.g.
        ``[("logmel", LogMelExtractor()), ("sed", PseudoLabelSED())]``.
    memory : str or joblib.Memory, default=None
        Caches fitted transformers (computes the log-mel features once per
        training set, e.g. once per grid-search fold).
    transform_input : list of str, default=None
        See :class:`sklearn.pipeline.Pipeline`.
    verbose : bool, default=False
        Print the time of each step.

    See Also
    --------
    make_pipeline : Builds one with automatic step names.
    sklearn.pipeline.Pipeline : The parent class.

    Examples
    --------
    >>> from sklearn_sed import LogMelExtractor, PseudoLabelSED
    >>> from sklearn_sed.pipeline import Pipeline
    >>> pipe = Pipeline([("logmel", LogMelExtractor()), ("sed", PseudoLabelSED())])
    >>> pipe.steps[-1][0]
    'sed'
    """

    def fit(self, X, y_weak=None, y_strong=None, **params):
        """Extract features and fit the final estimator.

        Parameters
        ----------
        X : list of str or list of ndarray
            Audio clips (file paths or waveforms), as the first step takes.
        y_weak : array-like or sequence, default=None
            Weak labels, passed as ``y``.
        y_strong : sequence, default=None
            Strong labels, routed to the final step's ``fit``.
        **params
            Step-prefixed fit parameters (``stepname__param``), as in
            scikit-learn.

        Returns
        -------
        self : Pipeline
            The fitted pipeline.
        """
        self._check_shared_settings()
        if y_strong is not None:
            params[f"{self.steps[-1][0]}__y_strong"] = y_strong
        return super().fit(X, y_weak, **params)

    def _check_shared_settings(self):
        """Refuse steps that disagree on a setting they share (``duration``).

        The extractor pads or cuts clips to its ``duration`` and the detector
        maps frames onto its own; if they differ, event times come out wrong.
        """
        steps = [s for _, s in self.steps if s not in (None, "passthrough")]
        for name in ("duration",):
            values = {
                type(s).__name__: s.get_params()[name]
                for s in steps
                if hasattr(s, "get_params") and name in s.get_params(deep=False)
            }
            if len(set(values.values())) > 1:
                raise ValueError(
                    f"The steps disagree on {name}: {values}. Set it on every "
                    f"step (Pipeline.set_params(<step>__{name}=...) for each), "
                    f"or with `--set {name}=...` on the command line."
                )

    def _transform_to_final(self, X):
        Xt = X
        for _, _, transformer in self._iter(with_final=False):
            Xt = transformer.transform(Xt)
        return Xt

    @available_if(_final_has("predict_frames"))
    def predict_frames(self, X):
        """Frame probabilities of the final step, (n_clips, n_frames_out, n_classes)."""
        return self._final_estimator.predict_frames(self._transform_to_final(X))

    @available_if(_final_has("predict_events"))
    def predict_events(self, X):
        """Events per clip from the final step, ``(onset, offset, event_label)``."""
        return self._final_estimator.predict_events(self._transform_to_final(X))

    @available_if(_final_has("score_segments"))
    def score_segments(self, X, y_strong):
        """Segment-based macro F1 of the final step."""
        return self._final_estimator.score_segments(
            self._transform_to_final(X), y_strong
        )


def make_pipeline(*steps, memory=None, transform_input=None, verbose=False):
    """Build a :class:`Pipeline` with step names taken from the classes.

    Parameters
    ----------
    *steps : list of estimators
        Transformers followed by a final estimator.
    memory : str or joblib.Memory, default=None
        Cache of fitted transformers.
    transform_input : list of str, default=None
        See :func:`sklearn.pipeline.make_pipeline`.
    verbose : bool, default=False
        Print the time of each step.

    Returns
    -------
    pipeline : Pipeline
        Steps named ``"logmelextractor"``, ``"pseudolabelsed"``, ...
    """
    return Pipeline(
        sk_pipeline._name_estimators(steps),
        memory=memory,
        transform_input=transform_input,
        verbose=verbose,
    )
