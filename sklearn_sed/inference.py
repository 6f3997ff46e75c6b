"""Detection on recordings of any length: overlapping windows, stitched.

A recording is read block by block (``features.load_audio`` with an
offset), so memory stays bounded for an hour-long file. Each window of the
training clip length goes through the fitted pipeline; frame probabilities
of overlapping windows are averaged on a global frame grid, and events are
formed once on the whole recording, so an event that crosses a window border
comes out as one event.
"""

import os
from typing import NamedTuple

import numpy as np

from sklearn_sed.audio.reading import audio_info, load_audio

__all__ = [
    "decode_file_frames",
    "predict_file_events",
    "predict_file_frames",
    "windowed_parts",
]


class WindowedParts(NamedTuple):
    """What inference on windows needs of a model (:func:`windowed_parts`).

    Attributes
    ----------
    transform : callable
        Clips (waveforms at ``sr``, or ``(waveform, rate)`` pairs) to
        feature maps.
    predict_frames : callable
        Feature maps to frame probabilities, ``(n_clips, n_frames_out,
        n_classes)``.
    decoder : object
        Its ``decode(frame_probs, duration=...)`` gives events.
    decoding : Decoding
        The decoding settings (per-class thresholds, filters, hysteresis).
    sr : int
        Sample rate of the features, in Hz.
    duration : float
        Seconds of one window (the training clip length).
    n_frames_out : int
        Frames of probabilities per window.
    n_classes : int
        Number of classes.
    """

    transform: object
    predict_frames: object
    decoder: object
    decoding: object
    sr: int
    duration: float
    n_frames_out: int
    n_classes: int


def windowed_parts(model):
    """Return what inference on windows needs of a fitted pipeline or ONNX model.

    Parameters
    ----------
    model : Pipeline or OnnxDetector
        A fitted ``LogMelExtractor`` + ``PseudoLabelSED`` pipeline, or an
        :class:`~sklearn_sed.deploy.OnnxDetector`.

    Returns
    -------
    parts : WindowedParts
    """
    if hasattr(model, "predict_frames_from_features"):  # deploy.OnnxDetector
        return WindowedParts(
            model.transform,
            lambda F: model.predict_frames_from_features(F)[0],
            model,
            model.decoding,
            model.frontend.sr,
            float(model.duration),
            model.n_frames_out_,
            len(model.classes_),
        )
    if not hasattr(model, "steps") or len(model.steps) < 2:
        raise TypeError(
            "model must be a fitted Pipeline of a LogMelExtractor and a "
            "PseudoLabelSED (as saved by `sklearn-sed train`), or an OnnxDetector. "
            f"Got {type(model).__name__} instead."
        )
    features, sed, extractor = model[:-1], model[-1], model[0]
    return WindowedParts(
        features.transform,
        sed.predict_frames,
        sed,
        # The decoding settings, for streams; a stand-in detector may lack them.
        sed._decoding() if hasattr(sed, "_decoding") else None,
        extractor.sr,
        float(sed.duration),
        sed.n_frames_out_,
        len(sed.classes_),
    )


def predict_file_frames(model, path, *, overlap=0.5, batch_size=8):
    """Frame probabilities of a whole recording.

    Parameters
    ----------
    model : Pipeline or OnnxDetector
        Fitted pipeline whose first step is a ``LogMelExtractor`` and last a
        ``PseudoLabelSED``, or an exported one
        (:class:`~sklearn_sed.deploy.OnnxDetector`).
    path : str or os.PathLike
        Audio file of any length, rate and channel count.
    overlap : float, default=0.5
        Fraction of a window shared with the next one, in [0, 1).
    batch_size : int, default=8
        Windows per forward pass.

    Returns
    -------
    frame_probs : ndarray of shape (n_frames, n_classes)
        Averaged probabilities on a grid of ``duration / n_frames_out`` s.
    frame_sec : float
        Length of one frame in seconds.
    length_sec : float
        Length of the recording in seconds.
    """
    parts = windowed_parts(model)
    path = os.fspath(path)
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1). Got {overlap!r} instead.")
    info = audio_info(path)
    duration = parts.duration
    n_out = parts.n_frames_out
    frame_sec = duration / n_out
    hop_frames = max(1, round(n_out * (1 - overlap)))
    hop_sec = hop_frames * frame_sec
    file_sr = info.samplerate
    length_sec = info.frames / file_sr
    n_total = max(1, int(np.ceil(length_sec / frame_sec)))
    n_windows = max(1, int(np.ceil(max(length_sec - duration, 0) / hop_sec)) + 1)
    acc = np.zeros((n_total + n_out, parts.n_classes))
    count = np.zeros(n_total + n_out)
    win_samples = round(duration * file_sr)
    starts = [round(w * hop_sec * file_sr) for w in range(n_windows)]
    for b in range(0, n_windows, batch_size):
        clips = []
        for start in starts[b : b + batch_size]:
            y = load_audio(
                path,
                sr=parts.sr,
                offset=start / file_sr,
                duration=win_samples / file_sr,
            )
            clips.append(y if y.size else np.zeros(1, np.float32))
        probs = parts.predict_frames(parts.transform(clips))
        for k, p in enumerate(probs):
            first = (b + k) * hop_frames
            acc[first : first + n_out] += p
            count[first : first + n_out] += 1
    frame_probs = acc[:n_total] / np.maximum(count[:n_total, None], 1)
    return frame_probs, frame_sec, length_sec


def predict_file_events(model, path, *, overlap=0.5):
    """Events of a whole recording, stitched across window borders.

    Parameters
    ----------
    model : Pipeline or OnnxDetector
        Fitted ``LogMelExtractor`` + ``PseudoLabelSED`` pipeline, or an
        exported one.
    path : str or os.PathLike
        Audio file of any length.
    overlap : float, default=0.5
        Window overlap fraction.

    Returns
    -------
    events : list of (onset, offset, event_label)
        In seconds from the start of the file, within ``[0, length]``.
    """
    decoder = windowed_parts(model).decoder
    return decode_file_frames(
        decoder, *predict_file_frames(model, path, overlap=overlap)
    )


def decode_file_frames(sed, frame_probs, frame_sec, length_sec):
    """Decode the stitched frames of :func:`predict_file_frames` into events.

    Parameters
    ----------
    sed : PseudoLabelSED or OnnxDetector
        Fitted detector; its own decoding (tuned per-class settings when it
        has them) is used, without clip gating (a recording has no clip
        probability).
    frame_probs : ndarray of shape (n_frames, n_classes)
        Frame probabilities of the whole recording.
    frame_sec : float
        Length of one frame in seconds.
    length_sec : float
        Length of the recording in seconds.

    Returns
    -------
    events : list of (onset, offset, event_label)
        In seconds, within ``[0, length_sec]``, each at least 1 ms long.
    """
    events = sed.decode(frame_probs[None], duration=frame_sec * len(frame_probs))[0]
    # An event must keep a length once written with millisecond precision
    # (events TSV): one that the end of the recording cuts to less is none.
    return [
        (on, min(off, length_sec), lab)
        for on, off, lab in events
        if round(min(off, length_sec), 3) > round(on, 3)
    ]
