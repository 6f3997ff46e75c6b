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

Both directions live here, above the estimator and the pipeline:
:func:`save` writes, :func:`load` reads.
"""

import functools
import importlib
import json
import os
import zipfile

import numpy as np
import torch

from sklearn_sed._atomic import atomic_path
from sklearn_sed._json import to_jsonable
from sklearn_sed._validation import check_class_names
from sklearn_sed._version import __version__
from sklearn_sed.training.net import (
    drop_compiled,
    history_from_rows,
    history_to_rows,
    load_module_state,
    module_state,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_MEMBER_BYTES",
    "load",
    "parameter_object_classes",
    "save",
]

#: Version of the file layout written by :func:`save`.
FORMAT_VERSION = 2
#: Name of the JSON member of a model file.
MANIFEST_NAME = "sklearn_sed.json"
#: Namespaces whose classes (optimizer, module) a model file may name.
ALLOWED_PREFIXES = ("torch.optim.", "sklearn_sed.")
#: Parameters that name places on disk: never written to, nor read from, a
#: model file (a file that set ``memory`` would make ``predict`` unpickle the
#: cache entries of that folder).
PATH_PARAMS = ("memory", "checkpoint_dir")
#: The step kinds of a pipeline that the safe format writes and reads.
PIPELINE_SHAPES = (
    ["LogMelExtractor", "PseudoLabelSED"],
    ["FusedFeatures", "PseudoLabelSED"],
    ["PretrainedEmbedding", "PseudoLabelSED"],
    ["PseudoLabelSED"],
    ["LogMelExtractor"],
    ["FusedFeatures"],
    ["PretrainedEmbedding"],
)
_STEP_KINDS = (
    "LogMelExtractor",
    "FusedFeatures",
    "PretrainedEmbedding",
    "PseudoLabelSED",
)


def _check_pipeline_shape(steps, what):
    """Raise unless the pipeline's step kinds are one of :data:`PIPELINE_SHAPES`."""
    kinds = [type(step).__name__ for _, step in steps]
    if kinds not in PIPELINE_SHAPES:
        raise ValueError(
            f"{what} a pipeline of {kinds}, which cannot predict: a saved "
            f"pipeline is one of {PIPELINE_SHAPES} (the extractor first, the "
            "detector last)."
        )


#: Most classes a model file may declare (DESED has 10, AudioSet 527).
MAX_MODEL_CLASSES = 10_000
#: Most epochs of training history, and of pseudo-label iterations, a model
#: file may hold.
MAX_HISTORY_ROWS = 100_000
#: Fitted per-class decoding settings: (low, high) bounds of each value.
_DECODING_BOUNDS = {
    "threshold_": (0.0, 1.0),
    "low_threshold_": (0.0, 1.0),
    "median_filter_sec_": (0.0, 3600.0),
}


def _check_fitted(fitted):
    """Raise unless a model file's fitted attributes are what ``fit`` makes.

    Counts are non-negative integers, per-class settings lists of one
    finite value per class within their range, scores finite.
    """
    n_classes = len(fitted["classes_"])

    def bad(name, expected):
        shown = repr(fitted[name])[:80]
        return ValueError(f"{name} must be {expected}. Got {shown} instead.")

    for name in ("n_mels_in_", "n_frames_in_", "n_frames_out_", "n_iter_"):
        v = fitted.get(name)
        if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**7):
            raise bad(name, "an integer in [0, 10**7]")
    for name in ("n_strong_", "n_weak_", "n_unlabeled_", "best_epoch_"):
        v = fitted.get(name)
        if v is not None and not (
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**9
        ):
            raise bad(name, "None or an integer in [0, 10**9]")
    f1 = fitted.get("validation_f1_")
    if f1 is not None and not (
        isinstance(f1, (int, float)) and not isinstance(f1, bool) and 0 <= f1 <= 1
    ):
        raise bad("validation_f1_", "None or a number in [0, 1]")
    weights = fitted.get("class_weight_")
    if not (
        isinstance(weights, list)
        and len(weights) == n_classes
        and all(_is_number(w) and 0 <= w < float("inf") for w in weights)
    ):
        raise bad("class_weight_", f"a list of {n_classes} finite numbers >= 0")
    for name, (low, high) in _DECODING_BOUNDS.items():
        v = fitted.get(name)
        if v is None:
            continue
        if not (
            isinstance(v, list)
            and len(v) == n_classes
            and all(_is_number(x) and low <= x <= high for x in v)
        ):
            raise bad(name, f"None or a list of {n_classes} numbers in [{low}, {high}]")
    records = fitted.get("pseudo_label_history_")
    if records is not None and not (
        isinstance(records, list)
        and len(records) <= MAX_HISTORY_ROWS
        and all(isinstance(r, dict) for r in records)
    ):
        raise bad(
            "pseudo_label_history_",
            f"a list of at most {MAX_HISTORY_ROWS} records (objects)",
        )


def _is_number(x):
    """Return whether ``x`` is a real number from JSON (bool excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


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


#: The fitted attributes a model file holds, by step kind (written and read).
_EXTRACTOR_FITTED = ("data_min_", "data_max_", "n_frames_")
_EMBEDDING_FITTED = (
    "checkpoint_sha256_",
    "n_features_out_",
    "n_frames_",
    "network_config_",
)


def _extractor_to_json(ext):
    return {
        "type": "LogMelExtractor",
        "params": to_jsonable(ext.get_params()),
        "fitted": {
            k: to_jsonable(getattr(ext, k))
            for k in _EXTRACTOR_FITTED
            if hasattr(ext, k)
        },
    }


def _embedding_to_json(emb, name, blobs, bundle):
    """Write a PretrainedEmbedding: settings and the checkpoint's SHA-256.

    The checkpoint itself goes in only with ``bundle`` (as safetensors).
    """
    from safetensors.torch import save as st_save
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(emb, "checkpoint_sha256_")
    params = emb.get_params()
    params["checkpoint"] = os.path.abspath(os.fspath(params["checkpoint"]))
    params["checkpoint_sha256"] = emb.checkpoint_sha256_
    entry = {
        "type": "PretrainedEmbedding",
        "params": to_jsonable(params),
        "fitted": {k: to_jsonable(getattr(emb, k)) for k in _EMBEDDING_FITTED},
        "bundled": None,
    }
    if bundle:
        member = f"{name}.checkpoint.safetensors"
        blobs[member] = st_save(
            {k: v.contiguous() for k, v in emb._network().state_dict().items()}
        )
        entry["bundled"] = member
    return entry


def _fused_to_json(fused, name, blobs, bundle):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(fused, "fold_")
    return {
        "type": "FusedFeatures",
        "logmel": _extractor_to_json(fused.logmel_),
        "embedding": _embedding_to_json(fused.embedding_, name, blobs, bundle),
    }


#: The estimator's parameters that hold parameter objects.
PARAM_OBJECTS = ("lr_schedule", "augment", "pseudo_labels", "mean_teacher", "decoder")


def parameter_object_classes():
    """Return the parameter objects a model file may hold, by class name.

    The reader builds only these (an allow-list, as for classes), and the
    command line's ``--set`` too.
    """
    from sklearn_sed.decoding.decode import Decoder
    from sklearn_sed.training.augment import Augment
    from sklearn_sed.training.callbacks import MeanTeacher, WarmupCosine
    from sklearn_sed.training.pseudo_labels import PseudoLabelSchedule

    return {
        cls.__name__: cls
        for cls in (Decoder, Augment, WarmupCosine, PseudoLabelSchedule, MeanTeacher)
    }


def _param_object_to_json(obj, name):
    """Write a parameter object as ``{"object": class name, "params": {...}}``."""
    if obj is None or isinstance(obj, str):
        return obj
    kind = type(obj).__name__
    if parameter_object_classes().get(kind) is not type(obj):
        raise TypeError(
            f"{name}={obj!r} cannot be saved in the safe format: only "
            f"{sorted(parameter_object_classes())} can. Consider joblib.dump."
        )
    fields = obj.get_params(deep=False)
    fields.pop("teacher", None)  # a training-time object, never in a model file
    return {"object": kind, "params": to_jsonable(fields)}


def _sed_to_json(sed, weights_name):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(sed, "net_")
    params = sed.get_params(deep=False)
    params["module"] = callable_to_json(params["module"], "module")
    params["optimizer"] = callable_to_json(params["optimizer"], "optimizer")
    params["callbacks"] = None  # training-time objects, not part of the model
    params["accelerator"] = None
    for name in PARAM_OBJECTS:
        params[name] = _param_object_to_json(params[name], name)
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


def save(obj, path, *, bundle_checkpoint=False):
    """Save a fitted PseudoLabelSED or Pipeline in the safe format, atomically.

    Parameters
    ----------
    obj : estimator or Pipeline
        Fitted PseudoLabelSED, LogMelExtractor, FusedFeatures or
        PretrainedEmbedding, or a Pipeline of them.
    path : str or os.PathLike
        Target file (by convention ``.sed``); replaced only once the new file is
        complete.
    bundle_checkpoint : bool, default=False
        Write a pretrained embedding's weights into the file (as
        safetensors, about 320 MB for Cnn14), so that it loads without the
        checkpoint. By default the file records the checkpoint's place and
        SHA-256 only, and :func:`load` reads the checkpoint and checks it.

    See Also
    --------
    load : The inverse.
    """
    from safetensors.torch import save as st_save

    steps = obj.steps if hasattr(obj, "steps") else [("model", obj)]
    if hasattr(obj, "steps") and all(
        type(step).__name__ in _STEP_KINDS for _, step in steps
    ):  # other kinds get their own error below
        _check_pipeline_shape(steps, "save was given")
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
        elif kind == "PretrainedEmbedding":
            entry = _embedding_to_json(step, name, blobs, bundle_checkpoint)
        elif kind == "FusedFeatures":
            entry = _fused_to_json(step, name, blobs, bundle_checkpoint)
        elif kind == "PseudoLabelSED":
            weights = f"{name}.safetensors"
            entry = _sed_to_json(step, weights)
            blobs[weights] = st_save(module_state(step.net_.module_))
        else:
            raise TypeError(
                f"Step {name!r} is a {kind}; the safe format holds "
                f"{', '.join(_STEP_KINDS)}. Consider joblib.dump for other "
                "estimators."
            )
        entry["name"] = name
        manifest["steps"].append(entry)
    with atomic_path(path, suffix=".sed") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=1))
            for name, blob in blobs.items():
                zf.writestr(name, blob)


#: Largest member of a model file that :func:`load` reads, in bytes, by kind.
MAX_MEMBER_BYTES = {"manifest": 64 * 2**20, "weights": 4 * 2**30}


#: Modules renamed since format version 1 was first written: files that name
#: the old place still load.
_MOVED = {
    "sklearn_sed.resnet.": "sklearn_sed.networks.resnet.",
    "sklearn_sed.crnn.": "sklearn_sed.networks.crnn.",
}


def _resolve(name, base):
    """Import the class ``name``, which must subclass ``base`` (allow-listed)."""
    for old, new in _MOVED.items():
        if isinstance(name, str) and name.startswith(old):
            name = new + name[len(old) :]
    refused = ValueError(
        f"Model file names {name!r}, which is not an allowed class (only "
        f"{base.__name__} subclasses in "
        f"{', '.join(p + '*' for p in ALLOWED_PREFIXES)}). The file was not "
        "written by sklearn_sed.save or was altered; it is refused."
    )
    if not isinstance(name, str) or not name.startswith(ALLOWED_PREFIXES):
        raise refused
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise refused from exc
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise refused
    if not qualname(obj).startswith(ALLOWED_PREFIXES):  # re-exported elsewhere
        raise refused
    return obj


def _callable_from_json(spec, base):
    if spec is None or isinstance(spec, str):  # a name; the estimator checks it
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"a class must be written as an object; got {spec!r}.")
    if "partial" in spec:
        kwargs = spec.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ValueError(f"partial arguments must be an object; got {kwargs!r}.")
        return functools.partial(_resolve(spec["partial"], base), **kwargs)
    return _resolve(spec["class"], base)


def _load_extractor(entry, device=None):
    from sklearn_sed.audio.features import LogMelExtractor

    params = dict(entry["params"])
    if device is not None:  # the STFT's device follows the network's
        params["device"] = device
    ext = LogMelExtractor(**params)
    ext._validate_params()
    fitted = entry["fitted"]
    if not isinstance(fitted, dict) or not set(fitted) <= set(_EXTRACTOR_FITTED):
        raise ValueError(f"unexpected fitted attributes of LogMelExtractor: {fitted!r}")
    for k, v in fitted.items():
        if v is not None and not isinstance(v, (int, float)):
            raise ValueError(f"LogMelExtractor.{k} must be a number; got {v!r}.")
        setattr(ext, k, v)
    return ext


def _load_embedding(entry, zf, device, checkpoint):
    """Build a PretrainedEmbedding: from its bundled weights, or its checkpoint."""
    from sklearn_sed.embeddings.checkpoints import CheckpointError
    from sklearn_sed.embeddings.transformer import PretrainedEmbedding

    params = dict(entry["params"])
    fitted = entry["fitted"]
    if not isinstance(fitted, dict) or set(fitted) != set(_EMBEDDING_FITTED):
        raise ValueError(
            f"unexpected fitted attributes of PretrainedEmbedding: {fitted!r}"
        )
    if checkpoint is not None:
        params["checkpoint"] = os.fspath(checkpoint)
    if device is not None:
        params["device"] = device
    params["checkpoint_sha256"] = fitted["checkpoint_sha256_"]
    emb = PretrainedEmbedding(**params)
    emb._validate_params()
    bundled = entry.get("bundled")
    if bundled:
        from safetensors.torch import load as st_load

        from sklearn_sed.embeddings.models import empty_network

        network = empty_network(emb.model, fitted["network_config_"])
        state = st_load(zf.read(bundled))
        _check_weights(state, network.state_dict(), bundled)
        network.load_state_dict(state, strict=True)
        network.eval().requires_grad_(False)
        emb.network_ = network.to(emb.device)
        for k, v in fitted.items():
            setattr(emb, k, v)
        return emb
    try:
        emb.fit()
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc} (The model file names the {emb.model} checkpoint it was "
            "trained with; give its place with sklearn_sed.load(..., "
            "checkpoint=PATH) or --checkpoint PATH.)"
        ) from None
    if emb.n_features_out_ != fitted["n_features_out_"]:
        raise ValueError("the embedding's dimension differs from the file's.")
    return emb


def _load_fused(entry, zf, device, checkpoint):
    from sklearn_sed.embeddings.fusion import FusedFeatures

    logmel = _load_extractor(entry["logmel"], device)
    emb = _load_embedding(entry["embedding"], zf, device, checkpoint)
    return FusedFeatures(emb, logmel)._set_fitted(logmel)


def _safetensors_shapes(zf, name):
    """Tensor shapes declared by a safetensors member, read from its header only."""
    with zf.open(name) as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"the weights {name!r} are corrupted (truncated).")
        n = int.from_bytes(head, "little")
        if n > MAX_MEMBER_BYTES["manifest"]:
            raise ValueError(f"the weights {name!r} are corrupted (a {n}-byte header).")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"the weights {name!r} are corrupted ({exc}).") from exc
    if not isinstance(header, dict):
        raise ValueError(f"the weights {name!r} are corrupted (no tensor table).")
    return {
        k: tuple(v["shape"])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "shape" in v
    }


def _check_weights(state, expected, name):
    """Refuse weights of another dtype than the network's, or not finite."""
    for key, tensor in state.items():
        want = expected[key].dtype
        if tensor.dtype != want:
            raise ValueError(
                f"the weights {name!r} hold {key!r} as {tensor.dtype}, but the "
                f"network's is {want}; the file was altered."
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(
                f"the weights {name!r} hold non-finite values in {key!r}; the "
                "file is corrupted or was altered."
            )


#: Flat parameters of format version 1 and the parameter object (and field)
#: that holds each since version 2.
_V1_FIELDS = {
    "max_iter": ("pseudo_labels", "max_iter"),
    "delta": ("pseudo_labels", "delta"),
    "threshold_start": ("pseudo_labels", "threshold_start"),
    "threshold_floor": ("pseudo_labels", "threshold_floor"),
    "stage2_weighting": ("pseudo_labels", "weighting"),
    "time_shift": ("augment", "time_shift"),
    "freq_mask": ("augment", "freq_mask"),
    "filter_augment": ("augment", "filter_augment"),
    "warmup_epochs": ("lr_schedule", "warmup_epochs"),
    "threshold": ("decoder", "threshold"),
    "median_filter_sec": ("decoder", "median_filter_sec"),
    "low_threshold": ("decoder", "low_threshold"),
    "postprocessing": ("decoder", "order"),
    "tune_postprocessing": ("decoder", "tune"),
}
#: Training settings of format version 1 that no longer exist (levers that
#: measured no gain, docs/benchmarks.md): they shaped the stored weights but
#: play no part in prediction, so a file that set them loads without them.
_V1_DROPPED = (
    "optimizer_kwargs",
    "teacher",
    "teacher_weight",
    "pseudo_negatives",
    "pseudo_low_ratio",
    "epochs_per_iter",
    "mixup",
    "ema_decay",
    "lr_restart_epoch",
    "lr_restart_scale",
)


def _params_from_v1(params, library_version):
    """Turn the flat parameters of format version 1 into parameter objects."""
    params = dict(params)
    if params.pop("clip_gating", False):
        raise ValueError(
            f"the model was saved by sklearn-sed {library_version} with "
            "clip_gating=True, which this version no longer has (it decoded "
            "events only where the clip probability passed the threshold). Load "
            f"it with sklearn-sed {library_version}, or retrain the model."
        )
    for name in _V1_DROPPED:
        params.pop(name, None)
    objects = {"pseudo_labels": {}, "augment": {}, "lr_schedule": {}, "decoder": {}}
    for old, (obj, field) in _V1_FIELDS.items():
        if old in params:
            objects[obj][field] = params.pop(old)
    pseudo_label = params.pop("pseudo_label", True)
    lr_schedule = params.pop("lr_schedule", None)
    aug = objects["augment"]
    params["pseudo_labels"] = (
        {"object": "PseudoLabelSchedule", "params": objects["pseudo_labels"]}
        if pseudo_label
        else None
    )
    params["augment"] = (
        {"object": "Augment", "params": aug} if any(aug.values()) else None
    )
    params["lr_schedule"] = (
        {"object": "WarmupCosine", "params": objects["lr_schedule"]}
        if lr_schedule == "cosine"
        else None
    )
    params["decoder"] = {"object": "Decoder", "params": objects["decoder"]}
    return params


def _param_object_from_json(spec, name):
    """Build an allow-listed parameter object from its JSON (or keep a name)."""
    if spec is None or isinstance(spec, str):  # a name; the estimator checks it
        return spec
    classes = parameter_object_classes()
    if (
        not isinstance(spec, dict)
        or spec.get("object") not in classes
        or not isinstance(spec.get("params"), dict)
    ):
        raise ValueError(
            f"{name} must be written as {{'object': one of {sorted(classes)}, "
            f"'params': {{...}}}}; got {spec!r}."
        )
    cls = classes[spec["object"]]
    fields = spec["params"]
    unknown = set(fields) - set(cls().get_params(deep=False))
    if unknown:
        raise ValueError(f"{name}: {spec['object']} has no field {sorted(unknown)}.")
    obj = cls(**fields)
    obj._validate_params()
    return obj


def _load_sed(entry, zf, device, version=FORMAT_VERSION, library_version=None):
    from safetensors.torch import load as st_load

    from sklearn_sed.estimator import PseudoLabelSED

    params = dict(entry["params"])
    if version < 2:
        params = _params_from_v1(params, library_version)
    for name in PARAM_OBJECTS:
        params[name] = _param_object_from_json(params.get(name), name)
    params["module"] = _callable_from_json(params.get("module"), torch.nn.Module)
    params["optimizer"] = _callable_from_json(
        params.get("optimizer"), torch.optim.Optimizer
    )
    for name in PATH_PARAMS:  # never restored from a file (see PATH_PARAMS)
        params[name] = None
    params["callbacks"] = None
    params["accelerator"] = None
    # Extra skorch settings (worker processes, ...) are the trainer's
    # business, never a model file's: a file could start any number of them.
    params["net_params"] = None
    if isinstance(params.get("n_blocks"), list):  # a tuple, written as JSON
        params["n_blocks"] = tuple(params["n_blocks"])
    if device is not None:
        params["device"] = device
    sed = PseudoLabelSED(**params)
    sed._validate_params()
    if sed.classes is not None:  # written verbatim into event tables too
        check_class_names(sed.classes, name="classes")
    fitted = entry["fitted"]
    if not isinstance(fitted, dict):
        raise ValueError("the fitted attributes must be an object.")
    classes = fitted.get("classes_")
    if not isinstance(classes, list) or not 0 < len(classes) <= MAX_MODEL_CLASSES:
        raise ValueError(
            f"classes_ must be a list of 1 to {MAX_MODEL_CLASSES} class names. "
            f"Got {type(classes).__name__} instead."
        )
    check_class_names(classes, name="classes_")
    unknown = sorted(str(k)[:40] for k in fitted if k not in sed.FITTED_ATTRIBUTES)
    if unknown:
        raise ValueError(
            f"{unknown[:3]} are not fitted attributes of PseudoLabelSED (it "
            f"has {list(sed.FITTED_ATTRIBUTES)})."
        )
    _check_fitted(fitted)
    for k, v in fitted.items():
        setattr(sed, k, v)
    sed.classes_ = np.asarray(classes)
    # One finite weight per class: checked by _check_fitted.
    sed.class_weight_ = np.asarray(fitted["class_weight_"], dtype=float)
    for k in ("threshold_", "median_filter_sec_", "low_threshold_"):
        if fitted.get(k) is not None:
            setattr(sed, k, np.asarray(fitted[k], dtype=float))
    sed._parameter_decoding()  # per-class lists: one finite value per class
    # The declared architecture against the stored tensors, before any
    # allocation: the module is built on torch's "meta" device (shapes only).
    stored = _safetensors_shapes(zf, entry["weights"])
    blocks = sed.n_blocks if isinstance(sed.n_blocks, int) else sum(sed.n_blocks)
    if sed.module is None and blocks > len(stored):  # before building it
        raise ValueError(
            f"n_blocks={sed.n_blocks} but the weights hold {len(stored)} tensors."
        )
    with torch.device("meta"):
        meta = sed._build_module(len(sed.classes_)).state_dict()
    expected = {k: tuple(v.shape) for k, v in meta.items()}
    if stored != expected:
        diff = sorted(set(stored) ^ set(expected)) or [
            k for k in expected if stored[k] != expected[k]
        ]
        raise ValueError(
            "the weights do not match the network the parameters describe "
            f"(first differences: {diff[:3]})."
        )
    try:
        state = st_load(zf.read(entry["weights"]))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(
            f"The weights {entry['weights']!r} are corrupted: {exc}"
        ) from exc
    _check_weights(state, meta, entry["weights"])
    net = drop_compiled(
        sed._make_net(sed.n_weak_, sed.n_strong_, train=False).initialize()
    )
    load_module_state(net.module_, state)
    history = entry.get("history", [])
    if not isinstance(history, list) or len(history) > MAX_HISTORY_ROWS:
        raise ValueError(
            f"the training history must be a list of at most {MAX_HISTORY_ROWS} "
            f"epochs. Got {type(history).__name__} of "
            f"{len(history) if isinstance(history, list) else '?'} instead."
        )
    net.history = history_from_rows(history)
    sed.net_ = net
    net.decoding_ = sed._decoding()
    return sed


def _check_members(zf, path):
    """Refuse compressed, repeated or too large members before reading one.

    :func:`save` stores every member uncompressed, so reading a member reads
    exactly its stored bytes: a compressed member (whose stated size a
    decompression bomb can fake, since ``zipfile`` inflates the whole member
    before checking it) is refused outright, and so is a name that occurs
    twice (readers disagree on which copy counts).
    """
    seen = set()
    for info in zf.infolist():
        if info.filename in seen:
            raise ValueError(
                f"{path!r}: member {info.filename!r} occurs twice; "
                "sklearn_sed.save writes each once, so the file was altered. "
                "It is refused."
            )
        seen.add(info.filename)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(
                f"{path!r}: member {info.filename!r} is compressed; "
                "sklearn_sed.save stores members uncompressed, so the file was "
                "altered. It is refused."
            )
        kind = "manifest" if info.filename == MANIFEST_NAME else "weights"
        size = max(info.file_size, info.compress_size)
        if size > MAX_MEMBER_BYTES[kind]:
            raise ValueError(
                f"{path!r}: member {info.filename!r} is {size} bytes, "
                f"above the {MAX_MEMBER_BYTES[kind]}-byte limit for a {kind} "
                "(sklearn_sed.io.MAX_MEMBER_BYTES)."
            )


def load(path, *, device="cpu", checkpoint=None):
    """Load a model saved by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or os.PathLike
        Model file.
    device : str or None, default="cpu"
        Device to load the weights to, and the device of the extractor's
        STFT (a model trained on GPU loads on CPU); None keeps the saved
        devices.
    checkpoint : str or os.PathLike, default=None
        Where the pretrained embedding's checkpoint is now, when it has
        moved since training (its SHA-256 must still equal the recorded
        one); None reads it where the file says. Unused for other models.

    Returns
    -------
    model : PseudoLabelSED, LogMelExtractor or Pipeline
        What was saved.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``device`` cannot be used here (``"cuda"`` without CUDA), or
        ``path`` is a folder, is not a sklearn-sed model file, is truncated,
        corrupted or altered (a member too large or too compressed, weights
        that do not match the declared network, an unknown parameter), names a
        class outside the allow-list, or was written by a newer format
        version. No other exception type leaves :func:`load` for a bad file.

    Notes
    -----
    Parameters that name places on disk
    (:data:`~sklearn_sed.io.PATH_PARAMS`: ``memory``,
    ``checkpoint_dir``) are never restored: the loaded model has them None.
    """
    if device is not None:
        from sklearn_sed._device import check_device

        check_device(device, trains=True)
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            f"path must be a file path (str or os.PathLike). Got {type(path).__name__}."
        )
    path = os.fsdecode(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder, not a sklearn-sed model file.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path!r} does not exist.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ValueError(
            f"{path!r} is not a readable sklearn-sed model file ({type(exc).__name__}: "
            f"{exc}). It may be truncated, corrupted, or a pickle/joblib file; "
            "sklearn_sed.load never unpickles."
        ) from exc
    with zf:
        try:
            return _load_members(zf, path, device, checkpoint)
        except ValueError as exc:
            if str(exc).startswith(repr(path)):
                raise
            raise ValueError(f"{path!r}: {exc}") from exc
        except (
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            RuntimeError,
            RecursionError,
            OverflowError,
            MemoryError,
            zipfile.BadZipFile,
            EOFError,
            UnicodeDecodeError,
            NotImplementedError,
        ) as exc:
            raise ValueError(
                f"{path!r} is a damaged or altered sklearn-sed model file "
                f"({type(exc).__name__}: {exc})."
            ) from exc


def _load_members(zf, path, device, checkpoint=None):
    _check_members(zf, path)
    try:
        manifest = json.loads(zf.read(MANIFEST_NAME))
    except KeyError as exc:
        raise ValueError(
            f"{path!r} is not a sklearn-sed model file (no {MANIFEST_NAME}). It may be "
            "a pickle/joblib file; sklearn_sed.load never unpickles."
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path!r}: the manifest is not JSON ({exc}).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "sklearn-sed":
        raise ValueError(f"{path!r} is not a sklearn-sed model file.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in model format version {version!r} (by sklearn-sed "
            f"{manifest.get('library_version')}), but this sklearn-sed reads versions "
            f"up to {FORMAT_VERSION}. Consider upgrading sklearn-sed."
        )
    entries = manifest.get("steps")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path!r} lists no step.")
    steps = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"{path!r}: a step must be an object, got {entry!r}.")
        if entry.get("type") == "LogMelExtractor":
            steps.append((entry["name"], _load_extractor(entry, device)))
        elif entry.get("type") == "PretrainedEmbedding":
            steps.append(
                (entry["name"], _load_embedding(entry, zf, device, checkpoint))
            )
        elif entry.get("type") == "FusedFeatures":
            steps.append((entry["name"], _load_fused(entry, zf, device, checkpoint)))
        elif entry.get("type") == "PseudoLabelSED":
            steps.append(
                (
                    entry["name"],
                    _load_sed(
                        entry, zf, device, version, manifest.get("library_version")
                    ),
                )
            )
        else:
            raise ValueError(
                f"{path!r} holds an unknown step type {entry.get('type')!r}."
            )
    if manifest.get("pipeline"):
        from sklearn_sed.pipeline import Pipeline

        _check_pipeline_shape(steps, f"{path!r} (damaged or altered) holds")
        return Pipeline(steps)
    if len(steps) != 1:
        raise ValueError(f"{path!r} holds {len(steps)} steps but no pipeline.")
    return steps[0][1]
