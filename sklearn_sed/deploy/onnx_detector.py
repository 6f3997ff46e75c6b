"""Run an exported detector with onnxruntime: no PyTorch, no pickle.

:class:`OnnxDetector` reads a file of
:func:`~sklearn_sed.deploy.export_onnx`, checks it as
:func:`sklearn_sed.load` checks a model file (size, format, every setting
typed and bounded, the graph's inputs and outputs against them, standard
operators and weights inside the file only), and detects events with the
same front end (:mod:`sklearn_sed.deploy.frontend`) and decoding
(:class:`~sklearn_sed.decoding.decode.Decoding`) as the pipeline it came
from. Long recordings go through the same windows as
:func:`sklearn_sed.inference.predict_file_events`.
"""

import json
import math
import os

import numpy as np

from sklearn_sed.audio.reading import (
    MAX_DURATION_SEC,
    MAX_N_FFT,
    MAX_N_MELS,
    MAX_SR,
    clip_frames,
)
from sklearn_sed.decoding.decode import Decoding
from sklearn_sed.deploy.frontend import SETTINGS, FrontEnd

__all__ = ["OnnxDetector"]

#: The largest ONNX file read (bytes): the safe format's cap on weights.
MAX_FILE_BYTES = 4 * 2**30
#: The largest number of classes a file may declare.
MAX_CLASSES = 10_000
_METADATA_KEY, _FORMAT, _FORMAT_VERSION = "sklearn_sed", "sklearn-sed-onnx", 1
#: Operator domains a file may use: ONNX's standard ones.
_DOMAINS = ("", "ai.onnx")


class OnnxDetector:
    """Sound event detection from an exported ONNX file, without PyTorch.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`~sklearn_sed.deploy.export_onnx` or
        ``sklearn-sed export``.
    batch_size : int, default=8
        Clips per onnxruntime call.
    providers : list of str, default=None
        onnxruntime execution providers; None is
        ``["CPUExecutionProvider"]``.
    threads : int, default=None
        onnxruntime's intra-op threads; None leaves its default (one per
        core).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the probabilities.
    frontend : FrontEnd
        The log-mel settings the network was trained with.
    decoding : Decoding
        Per-class thresholds, median filters and hysteresis.
    duration : float
        Seconds of one clip.
    n_frames_out_ : int
        Frames of probabilities per clip.
    metadata : dict
        Everything the file declares (format, versions, settings).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is a folder, too large, not an ONNX model, not written
        by :func:`~sklearn_sed.deploy.export_onnx`, uses operators outside
        ONNX's standard domains or weights outside the file, or declares
        settings that are missing, mistyped, out of bounds or inconsistent
        with its graph. Nothing else leaves the constructor for a bad file.
    ImportError
        If onnxruntime is not installed.

    Examples
    --------
    >>> from sklearn_sed.deploy import OnnxDetector  # doctest: +SKIP
    >>> detector = OnnxDetector("model.onnx")  # doctest: +SKIP
    >>> detector.predict_events(["clip.wav"])  # doctest: +SKIP
    [[(1.2, 3.4, 'Speech')]]
    """

    def __init__(self, path, *, batch_size=8, providers=None, threads=None):
        ort = _require("onnxruntime")
        self.path = os.fspath(path)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Got {batch_size!r}.")
        data = _read_bounded(self.path)
        proto = _parse(data, self.path)
        meta = _check_metadata(proto, self.path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self._runtime = ort.InferenceSession(
                data, options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types
            why = f"onnxruntime refused it: {exc}"
            raise ValueError(_refused(self.path, why)) from None
        _check_graph(self._runtime, meta, self.path)
        self.metadata = meta
        self.classes_ = np.asarray(meta["classes"])
        self.frontend = FrontEnd(**meta["frontend"])
        decoding = meta["decoding"]
        self.duration = float(decoding["duration"])
        self.decoding = Decoding(
            classes=self.classes_,
            duration=self.duration,
            threshold=np.asarray(decoding["threshold"]),
            median_filter_sec=np.asarray(decoding["median_filter_sec"]),
            low_threshold=np.asarray(decoding["low_threshold"]),
            order=decoding["order"],
        )
        self.n_frames_out_ = int(meta["network"]["n_frames_out"])

    def __repr__(self):
        return (
            f"OnnxDetector({self.path!r}, {len(self.classes_)} classes, "
            f"{self.duration} s clips)"
        )

    # -- the pipeline's API, for clips -----------------------------------------
    def transform(self, X):
        """Return the scaled log-mel maps of clips (the pipeline's front end).

        Parameters
        ----------
        X : sequence of str, os.PathLike, ndarray or (ndarray, rate)
            Audio files or waveforms (at the front end's ``sr_in``, else
            ``sr``), cut or zero-padded to one clip.

        Returns
        -------
        features : ndarray of shape (n_clips, n_frames, n_mels)
        """
        return self.frontend.transform(X)

    def predict_frames_from_features(self, features):
        """Run the network on feature maps.

        Parameters
        ----------
        features : ndarray of shape (n_clips, n_frames, n_mels)
            Scaled log-mel maps.

        Returns
        -------
        frame_probs : ndarray of shape (n_clips, n_frames_out, n_classes)
        clip_probs : ndarray of shape (n_clips, n_classes)
        """
        F = np.ascontiguousarray(features, dtype=np.float32)
        n_frames, n_mels = self.frontend.n_frames, self.frontend.n_mels
        if F.ndim != 3 or F.shape[1:] != (n_frames, n_mels):
            raise ValueError(
                f"features must have shape (n_clips, {n_frames}, {n_mels}), the "
                f"maps of this model's front end. Got {F.shape} instead."
            )
        frames, clips = [], []
        for start in range(0, len(F), self.batch_size):
            f, c = self._runtime.run(
                list(self.metadata["network"]["outputs"]),
                {self.metadata["network"]["input"]: F[start : start + self.batch_size]},
            )
            frames.append(f)
            clips.append(c)
        n_classes = len(self.classes_)
        if not frames:
            return (
                np.zeros((0, self.n_frames_out_, n_classes), np.float32),
                np.zeros((0, n_classes), np.float32),
            )
        return np.concatenate(frames), np.concatenate(clips)

    def predict_frames(self, X):
        """Frame probabilities of clips.

        Parameters
        ----------
        X : sequence of str, os.PathLike, ndarray or (ndarray, rate)
            See :meth:`transform`.

        Returns
        -------
        frame_probs : ndarray of shape (n_clips, n_frames_out, n_classes)
        """
        return self.predict_frames_from_features(self.transform(X))[0]

    def decode(self, frame_probs, *, duration=None):
        """Decode frame probabilities into events, as the pipeline's ``decode``.

        Parameters
        ----------
        frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
            Frame probabilities.
        duration : float, default=None
            Seconds spanned by the frames; None is one clip.

        Returns
        -------
        events : list of list of (onset, offset, event_label)
        """
        decoding = self.decoding
        if duration is not None:
            import dataclasses

            decoding = dataclasses.replace(decoding, duration=duration)
        return decoding.decode(np.asarray(frame_probs))

    def predict_events(self, X):
        """Events of clips, in seconds from each clip's start.

        Parameters
        ----------
        X : sequence of str, os.PathLike, ndarray or (ndarray, rate)
            See :meth:`transform`.

        Returns
        -------
        events : list of list of (onset, offset, event_label)
        """
        return self.decode(self.predict_frames(X))

    def predict_file_events(self, path, *, overlap=0.5):
        """Events of a recording of any length (overlapping windows, stitched).

        As :func:`sklearn_sed.inference.predict_file_events` for a pipeline.

        Parameters
        ----------
        path : str or os.PathLike
            Audio file.
        overlap : float, default=0.5
            Fraction of a window shared with the next, in [0, 1).

        Returns
        -------
        events : list of (onset, offset, event_label)
        """
        from sklearn_sed.inference import predict_file_events

        return predict_file_events(self, path, overlap=overlap)


def _refused(path, why):
    return (
        f"ONNX file {path!r} is refused: {why}. Export the model again with "
        "`sklearn-sed export MODEL OUT.onnx` (sklearn_sed.deploy.export_onnx)."
    )


def _require(name):
    try:
        return __import__(name)
    except ImportError as exc:
        raise ImportError(
            f'{name} is needed to run ONNX models: pip install "sklearn-sed[onnx]".'
        ) from exc


def _read_bounded(path):
    if os.path.isdir(path):
        raise ValueError(f"ONNX file {path!r} is a folder, not a file.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"ONNX file {path!r} does not exist.")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise ValueError(
            _refused(path, f"it holds {size} bytes, more than {MAX_FILE_BYTES}")
        )
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)


def _parse(data, path):
    """Parse the protobuf; refuse custom operators and outside weights."""
    onnx = _require("onnx")
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and others
        raise ValueError(_refused(path, f"it is not an ONNX model ({exc})")) from None
    if not proto.graph.node:
        raise ValueError(_refused(path, "it is not an ONNX model (no graph)"))
    domains = {node.domain for node in proto.graph.node}
    if not domains <= set(_DOMAINS):
        raise ValueError(
            _refused(path, f"it uses operators outside ONNX's domains: {domains}")
        )
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ValueError(
                _refused(path, f"weight {tensor.name!r} is stored outside the file")
            )
    return proto


def _check_metadata(proto, path):
    """Return the file's metadata, every field typed and bounded."""
    entries = {p.key: p.value for p in proto.metadata_props}
    if _METADATA_KEY not in entries:
        raise ValueError(
            _refused(path, "it was not written by sklearn-sed (no sklearn_sed entry)")
        )
    if len(entries[_METADATA_KEY]) > 64 * 2**20:
        raise ValueError(_refused(path, "its metadata is too large"))
    try:
        meta = json.loads(entries[_METADATA_KEY])
    except (ValueError, RecursionError) as exc:
        raise ValueError(_refused(path, f"its metadata is not JSON ({exc})")) from None

    def need(cond, what):
        if not cond:
            raise ValueError(_refused(path, what))

    need(isinstance(meta, dict), "its metadata is not an object")
    need(meta.get("format") == _FORMAT, f"its format is not {_FORMAT!r}")
    version = meta.get("format_version")
    need(
        isinstance(version, int) and not isinstance(version, bool),
        "it states no format version",
    )
    need(
        version <= _FORMAT_VERSION,
        f"it was written in format version {version}, newer than this library's "
        f"{_FORMAT_VERSION}; upgrade sklearn-sed",
    )
    classes = meta.get("classes")
    need(
        isinstance(classes, list)
        and 1 <= len(classes) <= MAX_CLASSES
        and all(isinstance(c, str) and c for c in classes)
        and len(set(classes)) == len(classes),
        "its classes are not a list of distinct names",
    )
    front = meta.get("frontend")
    need(
        isinstance(front, dict) and set(front) == set(SETTINGS),
        f"its front end must name exactly {sorted(SETTINGS)}",
    )
    for key, kind in SETTINGS.items():
        value = front[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            front[key] = value = float(value)
        need(
            isinstance(value, kind) and not isinstance(value, bool),
            f"front end setting {key}={value!r} has the wrong type",
        )
        if isinstance(value, float):
            need(math.isfinite(value), f"front end setting {key} is not finite")
    bounds = {
        "sr": (1, MAX_SR),
        "n_fft": (2, MAX_N_FFT),
        "hop_length": (1, MAX_N_FFT),
        "win_length": (1, front["n_fft"]),
        "n_mels": (1, MAX_N_MELS),
    }
    for key, (lo, hi) in bounds.items():
        need(lo <= front[key] <= hi, f"front end setting {key} is out of [{lo}, {hi}]")
    need(
        front["sr_in"] is None or 1 <= front["sr_in"] <= MAX_SR,
        "front end setting sr_in is out of bounds",
    )
    need(
        0 < front["duration"] <= MAX_DURATION_SEC, "its clip duration is out of bounds"
    )
    need(
        0 <= front["fmin"] < front["fmax"] <= front["sr"] / 2,
        "its mel band range is not within [0, sr / 2]",
    )
    need(front["scaling"] in ("dataset", "clip", None), "its scaling is unknown")
    if front["scaling"] == "dataset":
        need(
            front["data_min"] is not None
            and front["data_max"] is not None
            and front["data_max"] > front["data_min"],
            "its dataset scaling has no range",
        )
    network = meta.get("network")
    need(isinstance(network, dict), "it does not describe its network")
    for key in ("n_frames_in", "n_mels", "n_frames_out"):
        value = network.get(key)
        need(
            isinstance(value, int) and not isinstance(value, bool) and value >= 1,
            f"network size {key} is not a positive integer",
        )
    need(
        isinstance(network.get("input"), str)
        and isinstance(network.get("outputs"), list)
        and len(network["outputs"]) == 2
        and all(isinstance(o, str) for o in network["outputs"]),
        "its network's input and outputs are not named",
    )
    n_frames = clip_frames(front["duration"], front["sr"], front["hop_length"])
    need(
        (network["n_frames_in"], network["n_mels"]) == (n_frames, front["n_mels"]),
        "its network's input does not match its front end",
    )
    decoding = meta.get("decoding")
    need(isinstance(decoding, dict), "it has no decoding settings")
    need(
        decoding.get("duration") == front["duration"],
        "its decoding and front end disagree on the clip duration",
    )
    need(
        decoding.get("order") in ("threshold_first", "filter_first"),
        "its decoding order is unknown",
    )
    for key, lo, hi in (
        ("threshold", 0.0, 1.0),
        ("low_threshold", 0.0, 1.0),
        ("median_filter_sec", 0.0, MAX_DURATION_SEC),
    ):
        values = decoding.get(key)
        need(
            isinstance(values, list)
            and len(values) == len(classes)
            and all(
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                and lo <= v <= hi
                for v in values
            ),
            f"its decoding {key} is not one number in [{lo}, {hi}] per class",
        )
    need(
        all(
            lo <= hi
            for lo, hi in zip(
                decoding["low_threshold"], decoding["threshold"], strict=True
            )
        ),
        "a low threshold is above its threshold",
    )
    return meta


def _check_graph(runtime, meta, path):
    """Refuse a graph whose input or outputs are not the ones the metadata names."""
    network = meta["network"]
    inputs, outputs = runtime.get_inputs(), runtime.get_outputs()
    n_classes = len(meta["classes"])
    ok = (
        len(inputs) == 1
        and inputs[0].name == network["input"]
        and list(inputs[0].shape[1:]) == [network["n_frames_in"], network["n_mels"]]
        and [o.name for o in outputs] == network["outputs"]
        and list(outputs[0].shape[1:]) == [network["n_frames_out"], n_classes]
        and list(outputs[1].shape[1:]) == [n_classes]
    )
    if not ok:
        raise ValueError(
            _refused(
                path,
                "its graph's input or outputs do not match its metadata (input "
                f"{[(i.name, i.shape) for i in inputs]}, outputs "
                f"{[(o.name, o.shape) for o in outputs]})",
            )
        )
