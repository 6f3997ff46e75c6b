"""Safe, atomic model files: JSON for everything but the weights, safetensors for those.

Loading never unpickles: a model file is a ZIP archive holding
``sklearn_sed.json`` (parameters, classes, feature settings and scaling,
post-processing, history, format and library versions) and one
``.safetensors`` file of weights per network. Classes named in the JSON
(optimizer, module) are resolved only from an allow-list of the
``torch.optim`` and ``sklearn_sed`` namespaces. Saving writes a temporary file
in the target folder and renames it over the target, so a crash never leaves
a half-written file in place of a good one.

We looked at skops (``skops.io``), scikit-learn's secure format: it walks the
object graph with a list of trusted types, but a skorch net holds torch
modules, optimizers and callbacks that it does not know, which would all need
custom trusted-type handlers and still serialise torch tensors through numpy.
safetensors is the format torch models are shared in, loads without code, and
JSON describes the rest in a way a person can read.
"""

import functools
import importlib
import io
import json
import os
import zipfile

import numpy as np

from sklearn_sed._atomic import atomic_path

__all__ = ["FORMAT_VERSION", "load", "save"]

#: Version of the file layout written by :func:`save`.
FORMAT_VERSION = 1
_MANIFEST = "sklearn_sed.json"
_ALLOWED_PREFIXES = ("torch.optim.", "sklearn_sed.")


def _qualname(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def _resolve(name):
    if not isinstance(name, str) or not name.startswith(_ALLOWED_PREFIXES):
        raise ValueError(
            f"Model file names {name!r}, which is not an allowed class (only "
            f"{', '.join(p + '*' for p in _ALLOWED_PREFIXES)}). The file was not "
            "written by sklearn_sed.save or was altered; it is refused."
        )
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _callable_to_json(obj, name):
    if obj is None:
        return None
    if isinstance(obj, functools.partial):
        return {"partial": _qualname(obj.func), "kwargs": _jsonable(obj.keywords)}
    if isinstance(obj, type):
        qual = _qualname(obj)
        if qual.startswith(_ALLOWED_PREFIXES):
            return {"class": qual}
    raise TypeError(
        f"{name}={obj!r} cannot be saved in the safe format: only classes from "
        "torch.optim and sklearn_sed (or functools.partial of them) can. Consider "
        "joblib.dump for custom modules."
    )


def _callable_from_json(spec):
    if spec is None:
        return None
    if "partial" in spec:
        return functools.partial(_resolve(spec["partial"]), **spec["kwargs"])
    return _resolve(spec["class"])


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _extractor_to_json(ext):
    return {
        "type": "LogMelExtractor",
        "params": _jsonable(ext.get_params()),
        "fitted": {
            k: _jsonable(getattr(ext, k))
            for k in ("data_min_", "data_max_", "n_frames_")
            if hasattr(ext, k)
        },
    }


def _sed_to_json(sed, weights_name):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(sed, "net_")
    params = sed.get_params()
    params["module"] = _callable_to_json(params["module"], "module")
    params["optimizer"] = _callable_to_json(params["optimizer"], "optimizer")
    params["callbacks"] = None  # training-time objects, not part of the model
    params["memory"] = None
    params = _jsonable(params)
    fitted = {
        k: _jsonable(getattr(sed, k))
        for k in (
            "classes_",
            "class_weight_",
            "n_mels_in_",
            "n_frames_in_",
            "n_frames_out_",
            "n_iter_",
            "pseudo_label_history_",
            "n_strong_",
            "n_weak_",
            "best_epoch_",
            "threshold_",
            "median_filter_sec_",
            "validation_f1_",
        )
        if hasattr(sed, k)
    }
    history = [
        {k: _jsonable(v) for k, v in row.items() if k != "batches"}
        for row in sed.net_.history
    ]
    return {
        "type": "PseudoLabelSED",
        "params": params,
        "fitted": fitted,
        "weights": weights_name,
        "history": history,
    }


def save(obj, path):
    """Save a fitted PseudoLabelSED or Pipeline in the safe format, atomically.

    Parameters
    ----------
    obj : PseudoLabelSED, LogMelExtractor or Pipeline of them
        Fitted estimator(s).
    path : str or os.PathLike
        Target file (by convention ``.sed``); replaced only once the new file is
        complete.

    See Also
    --------
    load : The inverse.
    """
    from safetensors.torch import save as st_save

    from sklearn_sed import __version__

    steps = obj.steps if hasattr(obj, "steps") else [("model", obj)]
    manifest = {
        "format": "sklearn-sed",
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "pipeline": hasattr(obj, "steps"),
        "steps": [],
    }
    blobs = {}
    for name, step in steps:
        kind = type(step).__name__
        if kind == "LogMelExtractor":
            entry = _extractor_to_json(step)
        elif kind == "PseudoLabelSED":
            weights = f"{name}.safetensors"
            entry = _sed_to_json(step, weights)
            state = {
                k: v.detach().cpu().contiguous()
                for k, v in step.net_.module_.state_dict().items()
            }
            blobs[weights] = st_save(state)
        else:
            raise TypeError(
                f"Step {name!r} is a {kind}; the safe format holds LogMelExtractor "
                "and PseudoLabelSED. Consider joblib.dump for other estimators."
            )
        entry["name"] = name
        manifest["steps"].append(entry)
    with atomic_path(path, suffix=".sed") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, indent=1))
            for name, blob in blobs.items():
                zf.writestr(name, blob)


def _load_extractor(entry):
    from sklearn_sed.features import LogMelExtractor

    ext = LogMelExtractor(**entry["params"])
    for k, v in entry["fitted"].items():
        setattr(ext, k, v)
    return ext


def _load_sed(entry, zf, device):
    from safetensors.torch import load as st_load

    from sklearn_sed.estimator import PseudoLabelSED

    params = dict(entry["params"])
    params["module"] = _callable_from_json(params["module"])
    params["optimizer"] = _callable_from_json(params["optimizer"])
    if device is not None:
        params["device"] = device
    sed = PseudoLabelSED(**params)
    fitted = entry["fitted"]
    for k, v in fitted.items():
        setattr(sed, k, v)
    sed.classes_ = np.asarray(fitted["classes_"])
    sed.class_weight_ = np.asarray(fitted["class_weight_"])
    for k in ("threshold_", "median_filter_sec_"):
        if k in fitted:
            setattr(sed, k, np.asarray(fitted[k], dtype=float))
    try:
        state = st_load(zf.read(entry["weights"]))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(
            f"The weights {entry['weights']!r} are corrupted: {exc}"
        ) from exc
    net = sed._make_net(sed.n_weak_, sed.n_strong_)
    net.initialize()
    net.module_.load_state_dict(state)
    for row in entry.get("history", []):
        net.history.new_epoch()
        for k, v in row.items():
            net.history.record(k, v)
    net.sed_ = sed
    sed.net_ = net
    return sed


def load(path, *, device="cpu"):
    """Load a model saved by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or os.PathLike
        Model file.
    device : str or None, default="cpu"
        Device to load the weights to (a model trained on GPU loads on CPU);
        None keeps the saved device.

    Returns
    -------
    model : PseudoLabelSED, LogMelExtractor or Pipeline
        What was saved.

    Raises
    ------
    ValueError
        If the file is not a sklearn-sed model file, is truncated or corrupted,
        names a class outside the allow-list, or was written by a newer format
        version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist.")
    try:
        with open(path, "rb") as f:
            data = f.read()
        zf = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(zf.read(_MANIFEST))
    except (
        zipfile.BadZipFile,
        KeyError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        zipfile.LargeZipFile,
        EOFError,
    ) as exc:
        raise ValueError(
            f"{path!r} is not a readable sklearn-sed model file ({type(exc).__name__}: "
            f"{exc}). It may be truncated, corrupted, or a pickle/joblib file; "
            "sklearn_sed.load never unpickles."
        ) from exc
    if manifest.get("format") != "sklearn-sed":
        raise ValueError(f"{path!r} is not a sklearn-sed model file.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in model format version {version!r} (by sklearn-sed "
            f"{manifest.get('library_version')}), but this sklearn-sed reads versions "
            f"up to {FORMAT_VERSION}. Consider upgrading sklearn-sed."
        )
    steps = []
    for entry in manifest["steps"]:
        if entry.get("type") == "LogMelExtractor":
            steps.append((entry["name"], _load_extractor(entry)))
        elif entry.get("type") == "PseudoLabelSED":
            steps.append((entry["name"], _load_sed(entry, zf, device)))
        else:
            raise ValueError(
                f"{path!r} holds an unknown step type {entry.get('type')!r}."
            )
    if manifest.get("pipeline"):
        from sklearn_sed.pipeline import Pipeline

        return Pipeline(steps)
    return steps[0][1]
