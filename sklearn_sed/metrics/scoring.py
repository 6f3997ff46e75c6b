"""Event-based and segment-based F1 through sed_eval, and scikit-learn scorers.

The figures are sed_eval's own (Mesaros et al. 2016), computed clip by clip
as the DCASE2019 Task 4 evaluation does. Defaults are the DCASE2019 settings:
a 200 ms onset collar, an offset collar of max(200 ms, 20 % of the event
length), 1 s segments, and ``empty_system_output_handling="zero_score"``.
"""

import contextlib
import warnings

import numpy as np

from sklearn_sed._validation import check_n_clips

__all__ = [
    "SEDScorer",
    "call_final",
    "class_wise_f1",
    "final_estimator",
    "StrongLabelScorer",
    "event_based_f1",
    "event_f1_scorer",
    "finite_or_zero",
    "classes_without_events_quietly",
    "make_sed_scorer",
    "reference_events",
    "sed_eval_results",
    "segment_based_f1",
    "segment_f1_scorer",
    "take_clips",
]


def _as_event_dicts(events, filename):
    return [
        {
            "filename": filename,
            "onset": float(onset),
            "offset": float(offset),
            "event_label": str(label),
        }
        for onset, offset, label in events
    ]


def _label_list(y_true, y_pred, classes):
    """Return the classes to evaluate: ``classes`` and every label seen.

    A label in the output but not in ``classes`` (a class the reference subset
    or the training fold lacked) is scored as the false positives it is, and
    a reference label outside ``classes`` as misses, as sed_eval does with the
    union of the labels; neither raises.
    """
    labels = [] if classes is None else [str(c) for c in classes]
    seen = {str(e[2]) for clip in list(y_true) + list(y_pred) for e in clip or []}
    return labels + sorted(seen - set(labels))


def sed_eval_results(
    y_true,
    y_pred,
    *,
    metric="event",
    classes=None,
    duration=None,
    t_collar=0.2,
    percentage_of_length=0.2,
    time_resolution=1.0,
    evaluate_onset=True,
    evaluate_offset=True,
    empty_system_output_handling="zero_score",
):
    """Run sed_eval clip by clip and return its full results dict.

    Parameters
    ----------
    y_true, y_pred : sequence of sequence of (onset, offset, event_label)
        Reference and estimated events per clip, times in seconds.
    metric : {"event", "segment"}, default="event"
        ``EventBasedMetrics`` or ``SegmentBasedMetrics``.
    classes : array-like, default=None
        Event labels to evaluate, in order; labels of the events outside
        ``classes`` are evaluated too (as false positives or misses). By
        default every label seen.
    duration : float, default=None
        Clip length in seconds for segment-based metrics (sed_eval otherwise
        uses the last reference offset).
    t_collar : float, default=0.2
        Onset collar in seconds (event-based).
    percentage_of_length : float, default=0.2
        Offset collar as a fraction of the reference length (event-based).
    time_resolution : float, default=1.0
        Segment length in seconds (segment-based).
    evaluate_onset, evaluate_offset : bool, default=True
        Whether event matching checks onsets and offsets.
    empty_system_output_handling : {"zero_score", "default"}, default="zero_score"
        How a class with references that the system never outputs, or with
        output events but no references, is scored: 0 (``"zero_score"``,
        DCASE2019's event-based setting, applied to segment-based metrics and
        to false positives too) or NaN, which drops it from the macro mean
        (sed_eval's ``"default"``). Classes with neither are left out of the
        macro mean with an ``UndefinedMetricWarning``.

    Returns
    -------
    results : dict
        ``metrics.results()`` of sed_eval.
    """
    with warnings.catch_warnings():
        # dcase_util imports pkg_resources, which warns on import.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import sed_eval  # imported lazily: dcase_util is slow to import

    y_true, y_pred = list(y_true), list(y_pred)
    check_n_clips(y_true, y_pred, name="y_pred")
    labels = _label_list(y_true, y_pred, classes)
    if metric == "event":
        metrics = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=labels,
            t_collar=t_collar,
            percentage_of_length=percentage_of_length,
            evaluate_onset=evaluate_onset,
            evaluate_offset=evaluate_offset,
            empty_system_output_handling=empty_system_output_handling,
        )
    elif metric == "segment":
        metrics = sed_eval.sound_event.SegmentBasedMetrics(
            event_label_list=labels, time_resolution=time_resolution
        )
    else:
        raise ValueError(f"metric must be 'event' or 'segment'. Got {metric!r}.")
    for i, (ref, est) in enumerate(zip(y_true, y_pred, strict=True)):
        name = f"clip_{i}"
        kwargs = {}
        if metric == "segment" and duration is not None:
            kwargs["evaluated_length_seconds"] = duration
        metrics.evaluate(
            reference_event_list=_as_event_dicts(ref or [], name),
            estimated_event_list=_as_event_dicts(est or [], name),
            **kwargs,
        )
    with warnings.catch_warnings():
        # sed_eval averages all-NaN class lists when a class has no reference.
        warnings.filterwarnings("ignore", message="Mean of empty slice")
        results = metrics.results()
    if empty_system_output_handling == "zero_score":
        _zero_score_macro(results)
    return results


def _zero_score_macro(results):
    """Macro F1 over the classes that the reference or the output holds.

    A class with references that the system never outputs scores 0 (its
    misses), and so does a class that the system outputs but the reference
    lacks (its false positives); sed_eval leaves the latter, and in
    segment-based metrics the former, out of its mean as NaN (0/0), which
    inflates it. A class present in neither has no F1 and is left out, with
    an :class:`~sklearn.exceptions.UndefinedMetricWarning` naming it, as
    scikit-learn warns for a label with no true nor predicted sample. sed_eval's
    own figure stays under
    ``results["class_wise_average"]["f_measure"]["f_measure_sed_eval"]``, and
    the classes left out under ``results["classes_left_out"]``.
    """
    f_values, left_out = [], []
    for label, scores in results["class_wise"].items():
        if scores["count"]["Nref"] > 0 or scores["count"]["Nsys"] > 0:
            f_values.append(finite_or_zero(scores["f_measure"]["f_measure"]))
        else:
            left_out.append(label)
    average = results["class_wise_average"]["f_measure"]
    average["f_measure_sed_eval"] = average["f_measure"]
    average["f_measure"] = float(np.mean(f_values)) if f_values else float("nan")
    results["classes_left_out"] = left_out
    if left_out:
        from sklearn.exceptions import UndefinedMetricWarning

        warnings.warn(
            f"F1 is ill-defined for classes with neither reference nor output "
            f"events: {left_out}; they are left out of the macro average.",
            UndefinedMetricWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def classes_without_events_quietly():
    """Silence the warning about classes with neither reference nor output.

    For the library's own scoring of validation clips (every epoch, every
    grid point of the tuning), where a small validation set lacking a class
    is expected; user-facing scores warn.

    Yields
    ------
    None
    """
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        yield


def finite_or_zero(value):
    """Return ``value`` as a float, or 0.0 for sed_eval's None/NaN (a 0/0 score).

    Parameters
    ----------
    value : float or None
        A score from sed_eval's results.

    Returns
    -------
    score : float
        Finite.
    """
    return float(value) if value is not None and np.isfinite(value) else 0.0


def _f1(results, average):
    if average == "macro":
        value = results["class_wise_average"]["f_measure"]["f_measure"]
    elif average == "micro":
        value = results["overall"]["f_measure"]["f_measure"]
    else:
        raise ValueError(f"average must be 'macro' or 'micro'. Got {average!r}.")
    return finite_or_zero(value)


def class_wise_f1(y_true, y_pred, *, classes, metric="event", **kwargs):
    """F1 of each class, as sed_eval's macro average takes them.

    Parameters
    ----------
    y_true, y_pred : sequence of sequence of (onset, offset, event_label)
        Reference and estimated events per clip, times in seconds.
    classes : array-like of shape (n_classes,)
        Event labels, in the order of the result.
    metric : {"event", "segment"}, default="event"
        Event-based (DCASE2019 collars) or segment-based F1.
    **kwargs
        Passed to :func:`sed_eval_results` (``duration``, ``t_collar``, ...).

    Returns
    -------
    f1 : ndarray of shape (n_classes,)
        In [0, 1]; NaN for a class that is neither in ``y_true`` nor in
        ``y_pred`` (left out of the macro mean), 0 for a class with
        references and no output or output and no reference (DCASE2019's
        zero score).

    Examples
    --------
    >>> from sklearn_sed.metrics.scoring import class_wise_f1
    >>> ref = [[(1.0, 3.0, "Dog"), (4.0, 5.0, "Cat")]]
    >>> class_wise_f1(ref, [[(1.1, 3.1, "Dog")]], classes=["Cat", "Dog"])
    array([0., 1.])
    """
    classes = [str(c) for c in classes]
    results = sed_eval_results(y_true, y_pred, metric=metric, classes=classes, **kwargs)
    f1 = []
    for scores in (results["class_wise"][c] for c in classes):
        counts = scores["count"]
        if counts["Nref"] > 0 or counts["Nsys"] > 0:  # as _zero_score_macro
            f1.append(finite_or_zero(scores["f_measure"]["f_measure"]))
        else:
            f1.append(np.nan)
    return np.array(f1, dtype=float)


def event_based_f1(y_true, y_pred, *, average="macro", **kwargs):
    """Event-based F1 of sed_eval with the DCASE2019 settings.

    Parameters
    ----------
    y_true, y_pred : sequence of sequence of (onset, offset, event_label)
        Reference and estimated events per clip, times in seconds.
    average : {"macro", "micro"}, default="macro"
        Class-wise mean (DCASE ranking) or overall F1.
    **kwargs
        Passed to :func:`sed_eval_results` (``classes``, ``t_collar``, ...).

    Returns
    -------
    f1 : float
        In [0, 1]; 0 when undefined.

    See Also
    --------
    segment_based_f1 : The segment-based twin.

    Examples
    --------
    >>> from sklearn_sed import event_based_f1
    >>> ref = [[(1.0, 3.0, "Dog")]]
    >>> event_based_f1(ref, [[(1.1, 3.1, "Dog")]])
    1.0
    """
    return _f1(sed_eval_results(y_true, y_pred, metric="event", **kwargs), average)


def segment_based_f1(y_true, y_pred, *, average="macro", **kwargs):
    """Segment-based F1 of sed_eval (1 s segments by default).

    Parameters
    ----------
    y_true, y_pred : sequence of sequence of (onset, offset, event_label)
        Reference and estimated events per clip, times in seconds.
    average : {"macro", "micro"}, default="macro"
        Class-wise mean or overall F1.
    **kwargs
        Passed to :func:`sed_eval_results` (``classes``, ``time_resolution``,
        ``duration``...).

    Returns
    -------
    f1 : float
        In [0, 1]; 0 when undefined.

    See Also
    --------
    event_based_f1 : The event-based twin.

    Examples
    --------
    >>> from sklearn_sed import segment_based_f1
    >>> segment_based_f1([[(0.0, 2.0, "Dog")]], [[(0.0, 2.0, "Dog")]])
    1.0
    """
    return _f1(sed_eval_results(y_true, y_pred, metric="segment", **kwargs), average)


def take_clips(X, indices):
    """Select clips of ``X`` (array, memory map or list) by position.

    Parameters
    ----------
    X : ndarray or sequence
        Clips.
    indices : sequence of int
        Positions to keep.

    Returns
    -------
    X_sub : ndarray or list
        The selected clips, in the order of ``indices``.
    """
    if isinstance(X, np.ndarray):
        return X[indices]
    return [X[i] for i in indices]


def final_estimator(estimator):
    """Return the detector: the estimator itself or a pipeline's last step.

    Parameters
    ----------
    estimator : estimator or Pipeline
        A detector, or a pipeline (the library's or scikit-learn's) ending in
        one.

    Returns
    -------
    last : estimator
    """
    return estimator[-1] if hasattr(estimator, "steps") else estimator


def call_final(estimator, method, X):
    """Call a detector method on ``X``, through a pipeline's transformers.

    The library's :class:`~sklearn_sed.pipeline.Pipeline` has the SED methods
    (``predict_events``, ``predict_frames``); scikit-learn's own does not, so
    its transformers are applied first and the method of its last step is
    called.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Fitted detector or pipeline ending in one.
    method : str
        E.g. ``"predict_events"``, ``"predict_frames"``, ``"predict_proba"``.
    X : array-like
        The input of ``estimator``.

    Returns
    -------
    out
        What the method returns.
    """
    if hasattr(estimator, method):
        return getattr(estimator, method)(X)
    last = final_estimator(estimator)
    if last is not estimator and hasattr(last, method):
        Xt = estimator[:-1].transform(X) if len(estimator) > 1 else X
        return getattr(last, method)(Xt)
    raise TypeError(
        f"{type(last).__name__} has no {method} method; SED scorers need a "
        "PseudoLabelSED or a pipeline ending in one."
    )


def reference_events(y):
    """Return the reference events of the strongly labelled clips of ``y``.

    Parameters
    ----------
    y : sequence of (list of events, None or ClipLabels)
        Strong labels per clip; None (or a ClipLabels without events) marks a
        weak-only clip, which SED scorers skip.

    Returns
    -------
    refs : list of list of (onset, offset, event_label)
        Events of the scored clips.
    keep : list of int
        Their positions in ``y``.

    Raises
    ------
    TypeError
        If an entry is not a list of events (weak labels were passed).
    ValueError
        If no clip has strong labels.
    """
    from sklearn_sed.labels import ClipLabels

    refs, keep = [], []
    for i, entry in enumerate(y):
        if isinstance(entry, ClipLabels):
            entry = entry.events
        if entry is None:
            continue
        entry = list(entry)
        if entry and not (isinstance(entry[0], (tuple, list)) and len(entry[0]) == 3):
            raise TypeError(
                f"y[{i}] must be a list of (onset, offset, event_label) events, "
                f"None, or a ClipLabels. Got {entry!r} instead. SED scorers score "
                "against strong labels: consider y = combine_labels(y_weak, "
                "y_strong)."
            )
        refs.append(entry)
        keep.append(i)
    if not keep:
        raise ValueError(
            "y holds no strongly labelled clip to score against. SED scorers need "
            "events; consider y = combine_labels(y_weak, y_strong)."
        )
    return refs, keep


class StrongLabelScorer:
    """Scorer base that requests ``y_strong`` through metadata routing.

    With ``sklearn.set_config(enable_metadata_routing=True)``, model selection
    (``GridSearchCV``, ``cross_validate``...) passes the test fold's
    ``y_strong`` to the scorer, because the scorer requests it by default; the
    ``y`` it also receives (the weak labels) is then ignored. Without routing
    the reference is ``y``, which must then hold events: a list of events per
    clip, or ``combine_labels(y_weak, y_strong)``.
    """

    def get_metadata_routing(self):
        """Return the scorer's metadata request (``score``: ``y_strong``).

        Returns
        -------
        request : sklearn.utils.metadata_routing.MetadataRequest
        """
        from sklearn.utils.metadata_routing import MetadataRequest

        request = MetadataRequest(owner=self)
        alias = getattr(self, "_y_strong_request", True)
        request.score.add_request(param="y_strong", alias=alias)
        return request

    def set_score_request(self, *, y_strong=True):
        """Set whether the scorer requests ``y_strong`` (metadata routing).

        Parameters
        ----------
        y_strong : bool, str or None, default=True
            True requests it (the default already), False refuses it, a string
            requests it under that name.

        Returns
        -------
        self : scorer
            A scorer with the request set.
        """
        import copy

        if not (y_strong is None or isinstance(y_strong, (bool, str))):
            raise ValueError(
                f"y_strong must be True, False, None or an alias name. Got "
                f"{y_strong!r} instead."
            )
        new = copy.copy(self)
        new._y_strong_request = y_strong
        return new

    def _strong_clips(self, X, y, y_strong):
        """Return the clips of ``X`` with strong labels and their events.

        The reference is the routed ``y_strong`` if given, else ``y``; the
        weak-only clips (None) are left out of ``X``.
        """
        reference = y if y_strong is None else y_strong
        if reference is None:
            raise ValueError(
                f"{self!r} got no reference labels. Pass y (events per clip, "
                "or combine_labels(y_weak, y_strong)), or enable metadata "
                "routing (sklearn.set_config(enable_metadata_routing=True)) and "
                "pass y_strong=... to the model-selection call."
            )
        try:
            refs, keep = reference_events(reference)
        except TypeError as exc:
            if y_strong is not None:
                raise
            where = str(exc).split(" SED scorers")[0]
            raise ValueError(
                f"{self!r} got weak labels as its reference: {where} In model "
                "selection this is the y of GridSearchCV.fit(X, y_weak, "
                "y_strong=...) without metadata routing, where the scorer never "
                "sees y_strong. Either fit with y=combine_labels(y_weak, "
                "y_strong), or enable metadata routing "
                "(sklearn.set_config(enable_metadata_routing=True)): the SED "
                "scorers then receive y_strong by themselves."
            ) from None
        if len(keep) < len(reference):
            X = take_clips(X, keep)
        return X, refs


class SEDScorer(StrongLabelScorer):
    """Scorer ``scorer(estimator, X, y_strong)`` for sed_eval F1 scores.

    Follows scikit-learn's scorer protocol (greater is better), so it works as
    ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV` and
    :func:`~sklearn.model_selection.cross_validate`, and as skorch
    ``EpochScoring(scoring=...)``. It requests ``y_strong`` through metadata
    routing: with ``sklearn.set_config(enable_metadata_routing=True)``,
    ``GridSearchCV(...).fit(X, y_weak, y_strong=y_strong)`` scores every fold
    against its strong labels. Without routing, pass
    ``y = combine_labels(y_weak, y_strong)``; weak labels as the reference
    are refused with a ValueError.

    Parameters
    ----------
    metric : {"event", "segment"}, default="event"
        Event-based or segment-based F1.
    average : {"macro", "micro"}, default="macro"
        Class-wise mean or overall F1.
    **kwargs
        sed_eval settings passed to :func:`sed_eval_results`.
    """

    def __init__(self, metric="event", average="macro", **kwargs):
        self.metric = metric
        self.average = average
        self.kwargs = kwargs

    def __call__(self, estimator, X, y=None, *, y_strong=None):
        """Score ``estimator`` on ``X`` against the reference events.

        Parameters
        ----------
        estimator : PseudoLabelSED, Pipeline or SEDNet
            Fitted detector.
        X : array-like
            Its input.
        y : sequence, default=None
            Reference events per clip (None for a weak-only clip), or
            ClipLabels; ignored when ``y_strong`` is given.
        y_strong : sequence, default=None
            Reference events routed by metadata routing.

        Returns
        -------
        f1 : float
        """
        if hasattr(estimator, "decoding_") and isinstance(y, dict):
            return self._score_skorch(estimator, X, y)
        X, refs = self._strong_clips(X, y, y_strong)
        y_pred = call_final(estimator, "predict_events", X)
        last = final_estimator(estimator)
        return self.score_events(
            refs,
            y_pred,
            classes=getattr(last, "classes_", None),
            duration=getattr(last, "duration", None),
        )

    def score_events(self, y_true, y_pred, *, classes=None, duration=None):
        """Score event lists directly.

        Parameters
        ----------
        y_true, y_pred : sequence of sequence of (onset, offset, event_label)
            Reference and estimated events per clip.
        classes : array-like, default=None
            Classes to evaluate.
        duration : float, default=None
            Clip length in seconds (segment-based metrics).

        Returns
        -------
        f1 : float
            The score, greater is better.
        """
        kwargs = dict(self.kwargs)
        if classes is not None:
            kwargs.setdefault("classes", classes)
        if self.metric == "segment" and duration is not None:
            kwargs.setdefault("duration", duration)
        results = sed_eval_results(y_true, y_pred, metric=self.metric, **kwargs)
        return _f1(results, self.average)

    def _score_skorch(self, net, X, y):
        """Score a SEDNet during training (skorch ``EpochScoring``).

        ``y`` is the net's target dict; the strong clips' frame labels are
        decoded into reference events, and the others are left out.
        """
        from sklearn_sed.labels import KIND_STRONG, frames_to_events

        decoding = net.decoding_
        strong = np.flatnonzero(np.asarray(y["kind"]) == KIND_STRONG)
        if strong.size == 0:
            return float("nan")
        X = np.asarray(X)[strong]
        frame_probs = net.forward(X)[0].cpu().numpy()
        refs = [
            frames_to_events(
                np.asarray(y["frames"])[i],
                classes=decoding.classes,
                duration=decoding.duration,
            )
            for i in strong
        ]
        events = decoding.decode(frame_probs)
        return self.score_events(
            refs, events, classes=decoding.classes, duration=decoding.duration
        )

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return (
            f"make_sed_scorer(metric={self.metric!r}, average={self.average!r}{extra})"
        )


def make_sed_scorer(metric="event", *, average="macro", **sed_eval_kwargs):
    """Build a scorer from sed_eval settings.

    Parameters
    ----------
    metric : {"event", "segment"}, default="event"
        Event-based or segment-based F1.
    average : {"macro", "micro"}, default="macro"
        Class-wise mean or overall F1.
    **sed_eval_kwargs
        ``t_collar``, ``percentage_of_length``, ``time_resolution``...

    Returns
    -------
    scorer : SEDScorer
        Callable ``scorer(estimator, X, y_strong)``.
    """
    if metric not in ("event", "segment"):
        raise ValueError(f"metric must be 'event' or 'segment'. Got {metric!r}.")
    if average not in ("macro", "micro"):
        raise ValueError(f"average must be 'macro' or 'micro'. Got {average!r}.")
    return SEDScorer(metric, average, **sed_eval_kwargs)


#: Event-based macro F1, DCASE2019 settings.
event_f1_scorer = make_sed_scorer("event")
#: Segment-based macro F1, 1 s segments.
segment_f1_scorer = make_sed_scorer("segment")
