"""A scikit-learn Pipeline that takes ``fit(X, y_weak, y_strong)``.

:class:`Pipeline` is :class:`sklearn.pipeline.Pipeline` plus two things: a
``y_strong`` argument to ``fit`` that goes to the final step, and the SED
prediction methods (``predict_frames``, ``predict_events``,
``score_segments``) of the final step. Everything else, ``memory`` caching of
the feature extraction included, is scikit-learn's own.
"""

import numbers
import os

import numpy as np
import sklearn
from sklearn import pipeline as sk_pipeline
from sklearn.utils.metaestimators import available_if

__all__ = ["Pipeline", "check_training_lengths", "make_pipeline", "step_parts"]


def _routing_enabled():
    return bool(sklearn.get_config().get("enable_metadata_routing", False))


def _seconds(item, sr):
    """Length in seconds of one audio item (path, waveform or (waveform, rate))."""
    from sklearn_sed.audio.features import audio_info

    if isinstance(item, (str, os.PathLike)):
        info = audio_info(item)
        return info.frames / info.samplerate
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], numbers.Real):
        item, sr = item
    y = np.asarray(item)
    if y.ndim == 2:  # (channels, n_samples) or (n_samples, channels)
        return max(y.shape) / sr
    return y.shape[0] / sr if y.ndim else 0.0


def _item_seconds(X, sr):
    """Length in seconds of every audio item of ``X``, or None for no list.

    A 2-D numeric array is one clip per row; any other sequence holds paths,
    waveforms or ``(waveform, rate)`` pairs (only file headers are read).
    """
    if isinstance(X, (str, os.PathLike)) or not hasattr(X, "__len__"):
        return None
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "fiu":
        return [X.shape[1] / sr] * len(X)
    return [_seconds(item, sr) for item in X]


def check_training_lengths(X, *, duration, sr):
    """Refuse training clips longer than ``duration``.

    The extractor would keep their first ``duration`` seconds while their
    labels (a weak label above all) describe the whole recording. Prediction
    windows a long recording instead; training needs clips.

    Parameters
    ----------
    X : list of str or ndarray
        Audio clips: file paths (only their headers are read), waveforms, or
        ``(waveform, rate)`` pairs.
    duration : float
        The clip length in seconds; up to
        :data:`~sklearn_sed.audio.features.LENGTH_TOLERANCE_SEC` more is accepted.
    sr : int
        Sample rate of waveforms given without one.

    Raises
    ------
    ValueError
        Naming the first clip too long and how many there are.
    """
    from sklearn_sed.audio.features import LENGTH_TOLERANCE_SEC

    seconds = _item_seconds(X, sr) or []
    limit = duration + LENGTH_TOLERANCE_SEC
    long = {i: t for i, t in enumerate(seconds) if t > limit}
    if long:
        i, seconds = next(iter(long.items()))
        raise ValueError(
            f"X[{i}] is {seconds:.1f} s long ({len(long)} training clip(s) like "
            f"it), longer than the {duration} s clips the extractor makes: it "
            "would be cut while its labels describe all of it. Cut such "
            "recordings into clips (with their labels), or raise duration."
        )


def _crop_to_recordings(events, seconds):
    """End every event at the end of its recording.

    The extractor zero-pads a clip shorter than ``duration``; events decoded
    in the padding would end after the recording. ``seconds`` None (the
    input is not audio) returns the events as decoded.
    """
    if seconds is None:
        return events
    return [
        [(a, min(b, end), c) for a, b, c in clip if min(b, end) > a]
        for clip, end in zip(events, seconds, strict=True)
    ]


def step_parts(step):
    """Return a step and the transformers it holds, with their parameter prefixes.

    Parameters
    ----------
    step : estimator
        A pipeline step.

    Returns
    -------
    parts : list of (str, estimator)
        ``("", step)``, then ``("<param>__", transformer)`` for each
        parameter of the step that is itself a transformer (the log-mel
        extractor and the embedding of ``FusedFeatures``).
    """
    held = step.get_params(deep=False) if hasattr(step, "get_params") else {}
    return [("", step)] + [
        (f"{name}__", value)
        for name, value in held.items()
        if hasattr(value, "transform") and hasattr(value, "get_params")
    ]


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
        first = self.steps[0][1]
        if hasattr(first, "sr") and hasattr(first, "duration"):
            check_training_lengths(X, duration=first.duration, sr=self._input_sr())
        if y_strong is not None:
            if _routing_enabled():  # routed by the steps' requests
                params["y_strong"] = y_strong
            else:
                params[f"{self.steps[-1][0]}__y_strong"] = y_strong
        return super().fit(X, y_weak, **params)

    def _check_shared_settings(self):
        """Refuse steps that disagree on a setting they share (``duration``).

        The extractor pads or cuts clips to its ``duration`` and the detector
        maps frames onto its own; if they differ, event times come out wrong.
        """
        steps = [s for _, s in self.steps if s not in (None, "passthrough")]
        for name in ("duration",):
            values = {}
            for s in steps:  # and the transformers a step holds
                for prefix, part in step_parts(s):
                    if not hasattr(part, "get_params"):
                        continue
                    params = part.get_params(deep=False)
                    if name in params:
                        label = type(s).__name__ + (f".{prefix[:-2]}" if prefix else "")
                        values[label] = params[name]
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

    def _input_sr(self):
        """Sample rate of waveforms given without one, or None for no audio."""
        first = self.steps[0][1]
        return getattr(first, "sr_in", None) or getattr(first, "sr", None)

    def _audio_seconds(self, X):
        """Seconds of every audio item of ``X``, or None (no audio input)."""
        sr = self._input_sr()
        return None if sr is None else _item_seconds(X, sr)

    def _long_items(self, X, seconds=None):
        """Return the audio items longer than a training clip, {index: seconds}.

        A clip longer than the detector's ``duration`` by more than one
        output frame would be cut by the extractor; prediction paths window
        it or refuse it instead. Empty when the steps are not an audio
        extractor and a detector, or ``X`` holds no audio. ``seconds`` are
        the items' lengths when the caller has them (:meth:`_audio_seconds`).
        """
        last = self._final_estimator
        duration = getattr(last, "duration", None)
        n_out = getattr(last, "n_frames_out_", None)
        if duration is None or n_out is None:
            return {}
        if seconds is None:
            seconds = self._audio_seconds(X)
        limit = duration + duration / n_out
        return {i: t for i, t in enumerate(seconds or []) if t > limit}

    def _refuse_long(self, X, method):
        long = self._long_items(X)
        if long:
            i, seconds = next(iter(long.items()))
            raise ValueError(
                f"X[{i}] is {seconds:.1f} s long ({len(long)} clip(s) like it), "
                f"longer than the {self._final_estimator.duration} s clips the model "
                f"takes: {method} returns one row of fixed shape per clip and would "
                "cut it. Use predict_events (recordings are windowed and "
                "stitched), sklearn_sed.inference.predict_file_frames, or cut the "
                "recording into clips."
            )

    def predict(self, X, **params):
        """Clip labels of the final step; refuses clips longer than a training clip."""
        self._refuse_long(X, "predict")
        return super().predict(X, **params)

    def score(self, X, y=None, sample_weight=None, **params):
        """Score of the final step; refuses clips longer than a training clip."""
        self._refuse_long(X, "score")
        return super().score(X, y, sample_weight=sample_weight, **params)

    def predict_proba(self, X, **params):
        """Clip probabilities of the final step; refuses over-long clips."""
        self._refuse_long(X, "predict_proba")
        return super().predict_proba(X, **params)

    @available_if(_final_has("predict_frames"))
    def predict_frames(self, X):
        """Frame probabilities of the final step, (n_clips, n_frames_out, n_classes).

        Refuses clips longer than a training clip (see :meth:`predict_events`).
        """
        self._refuse_long(X, "predict_frames")
        return self._final_estimator.predict_frames(self._transform_to_final(X))

    @available_if(_final_has("predict_events"))
    def predict_events(self, X):
        """Events per clip from the final step, ``(onset, offset, event_label)``.

        A file longer than a training clip is cut into overlapping windows
        whose frame probabilities are stitched before decoding
        (:func:`sklearn_sed.inference.predict_file_events`), so its events
        span the whole recording; a waveform that long is refused (write it
        to a file, or cut it).
        """
        from sklearn_sed.inference import predict_file_events

        seconds = self._audio_seconds(X)  # headers read once, for both uses
        long = self._long_items(X, seconds)
        if not long:
            events = self._final_estimator.predict_events(self._transform_to_final(X))
            return _crop_to_recordings(events, seconds)
        items = list(X)
        for i in long:
            if not isinstance(items[i], (str, os.PathLike)):
                raise ValueError(
                    f"X[{i}] is a {long[i]:.1f} s waveform, longer than the "
                    f"{self._final_estimator.duration} s clips the model takes. "
                    "Pass it as a file path (windowed and stitched) or cut it."
                )
        short = [i for i in range(len(items)) if i not in long]
        events = [None] * len(items)
        if short:
            shorts = self._final_estimator.predict_events(
                self._transform_to_final([items[i] for i in short])
            )
            shorts = _crop_to_recordings(shorts, [seconds[i] for i in short])
            for i, ev in zip(short, shorts, strict=True):
                events[i] = ev
        for i in long:
            events[i] = predict_file_events(self, items[i])
        return events

    @available_if(_final_has("score_segments"))
    def score_segments(self, X, y_strong):
        """Segment-based macro F1 of the final step."""
        self._refuse_long(X, "score_segments")
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
