"""Writing model files: JSON for everything but the weights, safetensors for those.

A model file is a ZIP archive holding :data:`MANIFEST_NAME` (parameters,
classes, feature settings and scaling, post-processing, history, format and
library versions) and one ``.safetensors`` file of weights per network.
Classes are written by name, and only those of the :data:`ALLOWED_PREFIXES`
namespaces. The writer lives below the estimator (it needs no estimator
class, only the fitted objects), so that ``PseudoLabelSED.save`` calls it
without an upward import; :mod:`sklearn_sed.persistence` reads the files
back and re-exports :func:`save`.
"""

import functools
import json
import zipfile

from sklearn_sed._atomic import atomic_path
from sklearn_sed._json import to_jsonable
from sklearn_sed._version import __version__
from sklearn_sed.nets import history_to_rows, module_state

__all__ = ["ALLOWED_PREFIXES", "FORMAT_VERSION", "MANIFEST_NAME", "PATH_PARAMS", "save"]

#: Version of the file layout written by :func:`save`.
FORMAT_VERSION = 1
#: Name of the JSON member of a model file.
MANIFEST_NAME = "sklearn_sed.json"
#: Namespaces whose classes (optimizer, module) a model file may name.
ALLOWED_PREFIXES = ("torch.optim.", "sklearn_sed.")
#: Parameters that name places on disk: never written to, nor read from, a
#: model file (a file that set ``memory`` would make ``predict`` unpickle the
#: cache entries of that folder).
PATH_PARAMS = ("memory", "checkpoint_dir")


def qualname(obj):
    """Return ``module.qualname`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def callable_to_json(obj, name):
    """Return a class (or a functools.partial of one) as JSON, by name."""
    if obj is None or isinstance(obj, str):  # a name, e.g. optimizer="adam"
        return obj
    if isinstance(obj, functools.partial):
        return {"partial": qualname(obj.func), "kwargs": to_jsonable(obj.keywords)}
    if isinstance(obj, type):
        qual = qualname(obj)
        if qual.startswith(ALLOWED_PREFIXES):
            return {"class": qual}
    raise TypeError(
        f"{name}={obj!r} cannot be saved in the safe format: only classes from "
        "torch.optim and sklearn_sed (or functools.partial of them) can. Consider "
        "joblib.dump for custom modules."
    )


def _extractor_to_json(ext):
    return {
        "type": "LogMelExtractor",
        "params": to_jsonable(ext.get_params()),
        "fitted": {
            k: to_jsonable(getattr(ext, k))
            for k in ("data_min_", "data_max_", "n_frames_")
            if hasattr(ext, k)
        },
    }


def _sed_to_json(sed, weights_name):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(sed, "net_")
    params = sed.get_params(deep=False)
    params["module"] = callable_to_json(params["module"], "module")
    params["optimizer"] = callable_to_json(params["optimizer"], "optimizer")
    params["callbacks"] = None  # training-time objects, not part of the model
    params["accelerator"] = None
    params["teacher"] = None
    for name in PATH_PARAMS:  # places on this machine, not part of the model
        params[name] = None
    params = to_jsonable(params)
    fitted = {
        k: to_jsonable(getattr(sed, k))
        for k in sed.FITTED_ATTRIBUTES
        if hasattr(sed, k)
    }
    history = history_to_rows(sed.net_.history)
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
            blobs[weights] = st_save(module_state(step.net_.module_))
        else:
            raise TypeError(
                f"Step {name!r} is a {kind}; the safe format holds LogMelExtractor "
                "and PseudoLabelSED. Consider joblib.dump for other estimators."
            )
        entry["name"] = name
        manifest["steps"].append(entry)
    with atomic_path(path, suffix=".sed") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=1))
            for name, blob in blobs.items():
                zf.writestr(name, blob)
