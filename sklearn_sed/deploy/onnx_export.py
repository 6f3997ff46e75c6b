"""Export a fitted pipeline's network to ONNX, with what it needs around it.

The file holds the network's graph and weights (frame and clip
probabilities as outputs, a dynamic batch) and, in its metadata, the front
end's exact settings (a fitted :class:`~sklearn_sed.audio.features.LogMelExtractor`),
the classes and the decoding settings (per-class thresholds, median filters
and hysteresis, as ``predict`` uses them): everything
:class:`~sklearn_sed.deploy.OnnxDetector` needs to detect events as the
pipeline does. No pickle, no Python code: an ONNX file is a protobuf graph
of standard operators.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``)
is used: the dynamo exporter stops at ``nn.GRU`` (PyTorch issue 118740),
which the CRNN holds. The log-mel front end stays outside the graph:
``torch.stft`` has no exact ONNX lowering, and librosa computes the same
features (:mod:`sklearn_sed.deploy.frontend`).
"""

import io
import json
import math
import os
import warnings

import numpy as np

from sklearn_sed._atomic import atomic_path
from sklearn_sed._json import to_jsonable
from sklearn_sed._version import __version__
from sklearn_sed.deploy.frontend import FrontEnd

__all__ = ["FORMAT", "FORMAT_VERSION", "METADATA_KEY", "export_onnx"]

#: The metadata entry of an exported file, and its format's name and version.
METADATA_KEY = "sklearn_sed"
FORMAT, FORMAT_VERSION = "sklearn-sed-onnx", 1
#: Names of the graph's input and outputs.
INPUT, OUTPUTS = "features", ("frame_probs", "clip_probs")
#: Largest difference between onnxruntime's and torch's probabilities that
#: the export's own check accepts.
CHECK_ATOL = 1e-4


def _split(model):
    steps = getattr(model, "steps", None)
    kinds = [type(step).__name__ for _, step in steps or []]
    if kinds != ["LogMelExtractor", "PseudoLabelSED"]:
        raise TypeError(
            "export_onnx needs a fitted Pipeline of a LogMelExtractor and a "
            "PseudoLabelSED (what `sklearn-sed train` writes and sklearn_sed.load "
            f"reads), whose front end goes into the file. Got {type(model).__name__}"
            + (f" of {kinds}" if steps else "")
            + " instead."
        )
    return model[0], model[-1]


def metadata(extractor, sed):
    """Return the metadata dict of an exported detector (JSON-ready).

    Parameters
    ----------
    extractor : LogMelExtractor
        The fitted front end.
    sed : PseudoLabelSED
        The fitted detector.

    Returns
    -------
    meta : dict
        ``format``, ``format_version``, ``library_version``, ``classes``,
        ``frontend`` (:class:`~sklearn_sed.deploy.frontend.FrontEnd`'s
        fields), ``network`` (input and output names and sizes) and
        ``decoding`` (per-class ``threshold``, ``median_filter_sec``,
        ``low_threshold``, and ``order`` and ``duration``).
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(sed, "net_")
    threshold, median_filter_sec, low_threshold = sed.decoding_settings()
    front = FrontEnd.from_extractor(extractor)
    if front.n_frames != sed.n_frames_in_ or front.n_mels != sed.n_mels_in_:
        raise ValueError(
            f"The extractor makes {front.n_frames} x {front.n_mels} maps but the "
            f"detector was fitted on {sed.n_frames_in_} x {sed.n_mels_in_}: they "
            "are not one pipeline. Export the pipeline that was fitted together."
        )
    return to_jsonable(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "classes": [str(c) for c in sed.classes_],
            "frontend": {k: getattr(front, k) for k in front.__dataclass_fields__},
            "network": {
                "input": INPUT,
                "outputs": list(OUTPUTS),
                "n_frames_in": int(sed.n_frames_in_),
                "n_mels": int(sed.n_mels_in_),
                "n_frames_out": int(sed.n_frames_out_),
            },
            "decoding": {
                "duration": float(sed.duration),
                "threshold": [float(v) for v in threshold],
                "median_filter_sec": [float(v) for v in median_filter_sec],
                "low_threshold": [float(v) for v in low_threshold],
                "order": sed._decoder().order,
            },
        }
    )


def export_onnx(model, path, *, opset_version=17, check=True):
    """Write a fitted pipeline's network as an ONNX file that runs without PyTorch.

    Parameters
    ----------
    model : Pipeline
        A fitted ``LogMelExtractor`` + ``PseudoLabelSED`` pipeline (as
        :func:`sklearn_sed.load` returns a model of ``sklearn-sed train``).
    path : str or os.PathLike
        The ``.onnx`` file to write (atomically: a failed export leaves no
        file and an existing one as it was).
    opset_version : int, default=17
        ONNX operator set.
    check : bool, default=True
        Run the written file with onnxruntime on random feature maps (a
        batch of 2 clips) and raise unless its frame and clip probabilities
        equal torch's within ``1e-4``.

    Returns
    -------
    max_abs_diff : float or None
        The largest difference the check found (None without ``check``).

    Raises
    ------
    TypeError
        If ``model`` is not such a pipeline.
    ImportError
        If ``onnx`` (or, with ``check``, ``onnxruntime``) is not installed.
    ValueError
        If the check finds a difference above ``1e-4``.
    """
    import torch

    from sklearn_sed.training.net import bare_module

    extractor, sed = _split(model)
    meta = metadata(extractor, sed)
    onnx = _require("onnx")
    module = bare_module(sed.net_)
    was_training = module.training
    device = next(module.parameters()).device
    module = module.eval().cpu()
    shape = (2, meta["network"]["n_frames_in"], meta["network"]["n_mels"])
    example = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The legacy exporter's deprecation notice, and tracing notes on
            # the GRU's shape checks (the exported batch is dynamic and the
            # check below runs another batch size than the trace's).
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=[INPUT],
                output_names=list(OUTPUTS),
                dynamic_axes={name: {0: "batch"} for name in (INPUT, *OUTPUTS)},
                opset_version=opset_version,
                dynamo=False,
            )
    finally:
        module.to(device).train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.doc_string = (
        f"sklearn-sed {__version__} detector: {len(meta['classes'])} classes, "
        f"{meta['frontend']['duration']} s clips at {meta['frontend']['sr']} Hz"
    )
    data = proto.SerializeToString()
    max_diff = _check(data, sed, shape) if check else None
    with atomic_path(os.fspath(path), suffix=".onnx") as tmp, open(tmp, "wb") as f:
        f.write(data)
    return max_diff


def _check(data, sed, shape):
    """Run the exported graph with onnxruntime against torch, on other inputs."""
    import torch

    from sklearn_sed.training.net import forward_probabilities

    ort = _require("onnxruntime")
    runtime = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    X = rng.random((shape[0] + 1, *shape[1:]), dtype=np.float32)  # another batch
    frames, clips = runtime.run(list(OUTPUTS), {INPUT: X})
    with torch.inference_mode():
        t_frames, t_clips = forward_probabilities(sed.net_, X, None, len(X))
    diff = max(
        float(np.max(np.abs(frames - t_frames), initial=0.0)),
        float(np.max(np.abs(clips - t_clips), initial=0.0)),
    )
    if not math.isfinite(diff) or diff > CHECK_ATOL:
        raise ValueError(
            f"The exported network's probabilities differ from torch's by {diff:.3g} "
            f"(more than {CHECK_ATOL}); the file was not written. Please report "
            "it with the model's network class."
        )
    return diff


def _require(name):
    try:
        return __import__(name)
    except ImportError as exc:
        raise ImportError(
            f"{name} is needed to export and run ONNX models: pip install "
            '"sklearn-sed[onnx]".'
        ) from exc
