"""The ``sklearn-sed`` command line: thin wrappers over the public API.

User errors (a missing file, unreadable audio, an unknown label, an empty TSV,
a bad ``--set``, an output that would overwrite an input) print one line and
exit with status 2, never a traceback; anything else prints one line and
exits with status 1 (``SKLEARN_SED_DEBUG=1`` shows the traceback). Models
are written and read in the safe format (:func:`sklearn_sed.save`); a pickle
is read only with ``--allow-pickle``.
"""

import argparse
import ast
import inspect
import json
import os
import sys
import warnings

import numpy as np

__all__ = ["main"]

_AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


#: Parameters that hold Python objects and cannot be written on a command line.
_NOT_SETTABLE = ("callbacks", "memory")


def _literal(key, value):
    """Parse a ``--set`` value.

    A Python literal, a parameter object such as ``MeanTeacher(consistency=1)``
    (literal arguments only, from an allow-list), or the text itself.
    """
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError):
        pass
    except (RecursionError, MemoryError):
        raise CLIError(f"--set {key}=...: the value is too deeply nested.") from None
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return value
    from sklearn_sed.io import parameter_object_classes

    objects = parameter_object_classes()
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in objects
    ):
        return value
    if node.args:
        raise CLIError(
            f"--set {key}={value}: give {node.func.id}'s fields by name, e.g. "
            f"{node.func.id}(field=...)."
        )
    try:
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        return objects[node.func.id](**kwargs)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--set {key}={value}: {exc}") from None


def _network(key, value):
    """Parse ``--set module=crnn(n_filters=32)``: a named network, literal fields.

    Only the networks of :data:`sklearn_sed.networks.NETWORKS` can be named
    (by name or class name), with literal keyword fields: the same
    allow-list safety as the parameter objects.
    """
    from sklearn_sed.networks.registry import NETWORKS, network_factory

    names = ", ".join(f"{n}(...)" for n in NETWORKS)
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        node = None
    if isinstance(node, ast.Name):
        node = ast.Call(func=node, args=[], keywords=[])
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise CLIError(
            f"--set {key}={value}: give a network by name with literal fields, "
            f"one of {names}, e.g. --set module=crnn(n_filters=32); a network "
            "of your own needs the Python API."
        )
    known = {n.lower() for n in NETWORKS} | {
        c.__name__.lower() for c in NETWORKS.values()
    }
    if node.func.id.lower() not in known:
        raise CLIError(
            f"--set {key}={value}: network must be one of {sorted(NETWORKS)}. "
            f"Got {node.func.id!r} instead."
        )
    if node.args or any(kw.arg is None for kw in node.keywords):
        raise CLIError(
            f"--set {key}={value}: give the network's fields by name, e.g. "
            f"{node.func.id}(n_filters=32)."
        )
    try:
        fields = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        return network_factory(node.func.id, **fields)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise CLIError(f"--set {key}={value}: {exc}") from None


def _parse_set(pairs):
    import torch

    from sklearn_sed.training.build import OPTIMIZERS as _OPTIMIZERS

    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--set must be key=value. Got {pair!r} instead.")
        bare = key.rpartition("__")[2]
        if bare in _NOT_SETTABLE:
            raise CLIError(
                f"--set {key}=...: {bare} holds Python objects and cannot be set "
                "from the command line; use the Python API."
            )
        if bare == "module":
            params[key] = _network(key, value)
            continue
        if bare == "optimizer":
            name = value.strip().removeprefix("torch.optim.")
            name = _OPTIMIZERS.get(name.lower(), name)
            if not isinstance(getattr(torch.optim, name, None), type):
                raise CLIError(
                    f"--set {key}={value}: unknown optimizer; use one of "
                    f"{sorted(_OPTIMIZERS)} or a torch.optim class name."
                )
            params[key] = getattr(torch.optim, name)
            continue
        params[key] = _literal(key, value)
    return params


def _apply_set(pipe, params):
    """Route ``--set`` keys to the steps that own them, then validate them.

    A name goes to every step that has it (``duration`` and ``sr`` are
    shared by the extractor and the detector, and must agree), a field of a
    parameter object too (``decoder__threshold``); a step-prefixed name
    (``pseudolabelsed__lr``) is used as it is.
    """
    valid = pipe.get_params()
    routed, typed = {}, {}  # routed key: value, and the key as typed
    for key, value in params.items():
        owners = [f"{s}__{key}" for s, _ in pipe.steps if f"{s}__{key}" in valid]
        if key in valid:
            owners = [key]
        if not owners:
            _refuse_field_of_none(pipe, key, valid)
            raise CLIError(
                f"--set {key}=...: unknown parameter. Parameters of PseudoLabelSED "
                "and LogMelExtractor are accepted, e.g. --set max_epochs=5, and "
                "fields of its parameter objects, e.g. --set decoder__threshold=0.4."
            )
        routed.update(dict.fromkeys(owners, value))
        typed.update(dict.fromkeys(owners, key))
    for key, value in routed.items():
        fields = [k for k in routed if k.startswith(f"{key}__")]
        if fields and not hasattr(value, "set_params"):
            raise CLIError(
                f"--set {typed[key]}={value!r} is not a parameter object, but "
                f"--set {typed[fields[0]]}=... sets a field of one: the two "
                "settings conflict. Drop one of them."
            )
    try:
        pipe.set_params(**routed)
    except (ValueError, TypeError) as exc:  # a field the new object lacks
        raise CLIError(f"--set: {exc}") from None
    for name, step in pipe.steps:
        objects = [v for v in step.get_params(deep=False).values()]
        objects = [v for v in objects if hasattr(v, "_validate_params")]
        try:
            for obj in (step, *objects):
                obj._validate_params()
        except (ValueError, TypeError) as exc:
            raise CLIError(f"--set: {name}: {exc}") from None
    _check_device(pipe[-1].device)


def _refuse_field_of_none(pipe, key, valid):
    """Say so when ``key`` sets a field of a parameter object that is None."""
    from sklearn_sed.io import parameter_object_classes

    owner, sep, field = key.rpartition("__")
    if not sep:
        return
    holders = [
        k for k in (owner, *(f"{s}__{owner}" for s, _ in pipe.steps)) if k in valid
    ]
    if holders and valid[holders[0]] is None:
        kind = {
            "pseudo_labels": "PseudoLabelSchedule",
            "mean_teacher": "MeanTeacher",
            "lr_schedule": "WarmupCosine",
            "augment": "Augment",
            "decoder": "Decoder",
        }.get(owner.rpartition("__")[2])
        example = (
            f" e.g. --set '{owner}={kind}({field}=...)'"
            if kind in parameter_object_classes()
            else ""
        )
        raise CLIError(
            f"--set {key}=...: {owner} is None here, so it has no field {field}; "
            f"set the whole object instead,{example}."
        )


def _check_device(device):
    from sklearn_sed._device import check_device

    try:
        check_device(device, trains=True)
    except ValueError as exc:
        raise CLIError(f"--set: {exc}") from None


def _same_file(a, b):
    a, b = os.path.realpath(a), os.path.realpath(b)
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


#: What an existing output file must look like to be replaced, by kind: the
#: first bytes of a file this command writes. Anything else is the user's.
_OUTPUT_KINDS = {
    "model": (b"PK\x03\x04", "a sklearn-sed model file"),
    "events": (b"filename\tonset\toffset\tevent_label", "an events TSV"),
    "scores": (b"onset\toffset\t", "a frame-score TSV"),
    "figure": (b"\x89PNG", "a PNG figure"),
}


def _check_replaceable(path, kind, flag="--output"):
    """Refuse to replace an existing file that this command did not write.

    A file is replaced only when it starts as the command's own output of
    that kind does (an earlier run's events TSV, a model file, ...), so that
    a mistyped path never overwrites a recording, a label file or a report.
    """
    if not os.path.isfile(path):
        return
    magic, what = _OUTPUT_KINDS[kind]
    try:
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except OSError as exc:
        raise CLIError(f"{flag} {path!r} cannot be read ({exc.strerror}).") from None
    if head != magic and os.path.getsize(path) > 0:
        raise CLIError(
            f"{flag} {path!r} exists and is not {what}; it would be overwritten. "
            "Choose another output file, or move it away first."
        )


def _file_identity(path):
    """``(device, inode)`` of an existing file, None for none (or no path)."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_output(path, inputs, kind=None):
    """Refuse an output that is a folder, lacks its folder or is an input.

    Called before any work, so that nothing is trained or read in vain.
    """
    if os.path.isdir(path):
        raise CLIError(f"--output {path!r} is a folder; give a file name.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"--output {path!r}: the folder {folder!r} does not exist.")
    if not os.access(folder, os.W_OK):
        raise CLIError(
            f"--output {path!r}: the folder {folder!r} is not writable. Choose "
            "another output file."
        )
    for item in inputs:
        if item and os.path.exists(item) and _same_file(path, item):
            raise CLIError(
                f"--output {path!r} is also an input ({item!r}); it would be "
                "overwritten. Choose another output file."
            )
    if kind is not None:
        _check_replaceable(path, kind)


#: Largest count that a demo option takes (beyond it nothing fits in memory).
_MAX_DEMO_COUNT = 100_000


def _positive_int(flag):
    """Build an argparse type: an integer in [1, 100000], or a one-line error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be a whole number; got {text!r}."
            ) from None
        if not 1 <= value <= _MAX_DEMO_COUNT:
            raise argparse.ArgumentTypeError(
                f"{flag} must be between 1 and {_MAX_DEMO_COUNT}; got {value}."
            )
        return value

    return parse


def _check_folder(flag, path, *, parent_must_exist=False):
    """Refuse a folder option that names an existing file (None passes).

    With ``parent_must_exist``, also one whose parent folder does not exist:
    the folder itself is created, never a chain of them from a typo (as
    ``--output`` refuses a missing folder).
    """
    if path and os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"{flag} {path!r} is a file, not a folder.")
    parent = os.path.dirname(os.path.abspath(path)) if path else None
    if parent_must_exist and path and not os.path.isdir(parent):
        raise CLIError(
            f"{flag} {path!r}: its parent folder {parent!r} does not exist. "
            "Create it first, or check the path."
        )


def _save_model(pipe, path):
    from sklearn_sed.io import save

    save(pipe, path)


def _load_model(path, *, allow_pickle=False):
    import zipfile

    from sklearn_sed.io import load

    if os.path.isdir(path):
        raise CLIError(f"model {path!r} is a folder, not a model file.")
    if not os.path.isfile(path):
        raise CLIError(f"model file {path!r} does not exist.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CLIError(
            f"model file {path!r} cannot be read ({exc.strerror}); check its "
            "permissions."
        ) from None
    if magic == b"PK\x03\x04" or zipfile.is_zipfile(path):
        return _audio_pipeline(load(path), path)
    if not allow_pickle:
        raise CLIError(
            f"model file {path!r} is not in the safe format (sklearn_sed.save); it "
            "may be a joblib/pickle file. Loading a pickle runs whatever code it "
            "holds: pass --allow-pickle only for a file you made yourself."
        )
    import joblib

    print(
        f"warning: loading {path!r} with joblib (pickle) because of --allow-pickle.",
        file=sys.stderr,
    )
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling raises many types
        raise CLIError(f"model file {path!r} could not be loaded: {exc}") from exc
    return _audio_pipeline(model, path)


def _audio_pipeline(model, path):
    """Refuse a model that is not an audio pipeline (extractor, then detector)."""
    steps = getattr(model, "steps", None)
    if (
        not steps
        or len(steps) < 2
        or not hasattr(steps[0][1], "sr")
        or not hasattr(steps[-1][1], "predict_frames")
    ):
        raise CLIError(
            f"model file {path!r} holds a {type(model).__name__}, not a pipeline "
            "of a feature extractor and a detector; the command line reads "
            "audio. Save make_pipeline(LogMelExtractor(...), detector) instead "
            "(as `sklearn-sed train` does)."
        )
    return model


def _cmd_demo(args):
    from sklearn_sed.demo import run_demo

    _check_folder("--output-dir", args.output_dir)

    run_demo(
        n_train=args.n_train,
        n_valid=args.n_valid,
        n_dev=args.n_dev,
        n_filters=args.n_filters,
        verbose=0 if args.quiet else 1,
        max_epochs=args.max_epochs,
        max_iter=args.max_iter,
        batch_size=args.batch_size,
        output_dir=args.output_dir,
        random_state=args.random_state,
    )


def _train_pipeline(args):
    """Build the unfitted pipeline of ``train``: recipe, network, ``--set``, teacher."""
    from sklearn_sed.audio.features import LogMelExtractor
    from sklearn_sed.pipeline import make_pipeline
    from sklearn_sed.recipes import RECIPES, make_detector, make_teacher

    # An epoch table always; a bar over each epoch's batches on a terminal.
    verbose = 2 if sys.stderr.isatty() else 1
    # The teacher is built after --set, from the student's settings.
    recipe_teacher = getattr(RECIPES[args.recipe].get("pseudo_labels"), "teacher", None)
    settings = _parse_set(args.set)
    if args.network is not None and any(
        k.rpartition("__")[2] == "module" for k in settings
    ):
        raise CLIError(
            "--network and --set module=... both choose the network. Give one of them."
        )
    # The recipe's teacher shorthand is resolved below, after --set.
    no_teacher = {"pseudo_labels__teacher": None} if recipe_teacher else {}
    try:
        student = make_detector(
            args.recipe, network=args.network, verbose=verbose, **no_teacher
        )
    except ValueError as exc:
        raise CLIError(f"--network: {exc}") from None
    pipe = make_pipeline(LogMelExtractor(verbose=1), student)
    _apply_set(pipe, settings)
    extractor, sed = pipe[0], pipe[-1]
    _match_network_to_features(sed, extractor)
    if args.checkpoint_dir:
        sed.set_params(checkpoint_dir=args.checkpoint_dir)
    if (args.teacher or recipe_teacher or "none") == "crnn":
        if sed.pseudo_labels is None:
            raise CLIError(
                "--teacher crnn draws the pseudo labels of stage 2, but "
                "pseudo_labels=None skips stage 2. Drop one of the two."
            )
        own = {}
        if args.checkpoint_dir:  # its own checkpoints, beside the student's
            own["checkpoint_dir"] = os.path.join(args.checkpoint_dir, "teacher")
        teacher = make_teacher(args.recipe, n_mels=extractor.n_mels, student=sed, **own)
        sed.set_params(pseudo_labels__teacher=teacher)
    return pipe


def _match_network_to_features(sed, extractor):
    """Give a named CRNN the extractor's mel bands, unless its fields set them."""
    import functools

    from sklearn_sed.networks.registry import network_name

    module = sed.module
    if (
        network_name(module) == "crnn"
        and isinstance(module, functools.partial)
        and "n_mels" not in module.keywords
        and extractor.n_mels != 64  # the CRNN's default
    ):
        sed.set_params(module=functools.partial(module, n_mels=extractor.n_mels))


def _check_unlabeled_needed(args, sed):
    """Refuse a recipe whose mean teacher needs unlabelled clips without them."""
    from sklearn_sed.recipes import RECIPE_CARDS

    card = RECIPE_CARDS[args.recipe]
    if card.needs_unlabeled and sed.mean_teacher is not None and not args.unlabeled_tsv:
        raise CLIError(
            f"--recipe {args.recipe} needs unlabelled clips: its mean teacher "
            "learns from them. Give --unlabeled-tsv (DESED's unlabel_in_domain "
            "TSV, a 'filename' column) with its audio folder, or train without "
            "the mean teacher (--set mean_teacher=None), or choose --recipe cpu."
        )


def _cmd_train(args):
    folders = _train_folders(args)  # checked before any work
    _check_output(
        args.output,
        [
            args.strong_tsv,
            args.weak_tsv,
            args.unlabeled_tsv,
            args.valid_tsv,
            *folders.values(),
        ],
        kind="model",
    )
    _check_folder("--checkpoint-dir", args.checkpoint_dir)
    pipe = _train_pipeline(args)  # settings checked before any work
    extractor, sed = pipe[0], pipe[-1]
    _check_unlabeled_needed(args, sed)
    figure = _training_figure_path(args)
    X, y_weak, y_strong = _load_listed(
        {"strong": "strong", "weak": "weak", "unlabeled": "unlabeled"},
        strong_tsv=args.strong_tsv,
        weak_tsv=args.weak_tsv,
        unlabeled_tsv=args.unlabeled_tsv,
        strong_audio_dir=folders.get("strong"),
        weak_audio_dir=folders.get("weak"),
        unlabeled_audio_dir=folders.get("unlabeled"),
    )
    if not X:
        raise CLIError("the TSV files list no clip.")
    validation = {}
    X_val = []
    if args.valid_tsv:
        X_val, _, y_val = _load_listed(
            {"strong": "valid"},
            strong_tsv=args.valid_tsv,
            strong_audio_dir=folders["valid"],
        )
    # Every listed clip is an input too: the model never overwrites one.
    _check_output(args.output, [*X, *X_val])
    from sklearn_sed.pipeline import check_training_lengths

    check_training_lengths(
        X, duration=extractor.duration, sr=extractor.sr_in or extractor.sr
    )
    features = extractor.fit_transform(X)
    if args.valid_tsv:
        validation = {"X_val": extractor.transform(X_val), "y_val": y_val}
    sed.fit(features, y_weak, y_strong, **validation)
    _save_model(pipe, args.output)
    print(f"saved {args.output}")
    _report_training(sed, validation, figure)


def _training_figure_path(args):
    """Return the figure written beside the model (checked first), or None."""
    if not args.valid_tsv or args.no_figure:
        return None
    figure = os.path.splitext(args.output)[0] + ".training.png"
    _check_replaceable(figure, "figure", flag="--output (its training figure)")
    return figure


def _report_training(sed, validation, figure):
    """Print the kept epoch's per-class F1 and write the figure (or say why not)."""
    how = "tuned per class" if getattr(sed.decoder, "tune", False) else "as set"
    if not validation:
        if sed.validation_f1_ is not None:
            print(
                f"dev-split event-based F1: {100 * sed.validation_f1_:.1f} % "
                f"(epoch {sed.best_epoch_} kept, post-processing {how}; "
                "validation_fraction of the strong training clips)"
            )
        print(
            "Nothing was scored on held-out clips: no --valid-tsv. To score, "
            "train with --valid-tsv (strong labels of clips kept out of "
            "training), or run `sklearn-sed predict MODEL AUDIO --output "
            "events.tsv` then `sklearn-sed evaluate events.tsv reference.tsv`."
        )
        return
    from sklearn_sed.metrics.scoring import (
        class_wise_f1,
        classes_without_events_quietly,
    )

    with classes_without_events_quietly():
        f1 = class_wise_f1(
            validation["y_val"],
            sed.predict_events(validation["X_val"]),
            classes=sed.classes_,
        )
    width = max(len(str(c)) for c in sed.classes_)
    kept = "the last epoch" if sed.best_epoch_ is None else f"epoch {sed.best_epoch_}"
    print(
        f"Validation event-based F1 per class, {kept} kept "
        f"(post-processing {how}; these clips chose the epoch"
        + (" and the decoding" if how.startswith("tuned") else "")
        + ", so the figures are optimistic):"
    )
    for label, value in zip(sed.classes_, f1, strict=True):
        text = (
            "  n/a (no reference, no output)"
            if np.isnan(value)
            else f"{100 * value:6.1f} %"
        )
        print(f"  {label!s:<{width}}  {text}")
    mean = 100 * np.nanmean(f1) if np.any(~np.isnan(f1)) else float("nan")
    print(f"  {'macro mean':<{width}}  {mean:6.1f} %")
    if figure is None:
        return
    from sklearn_sed._atomic import atomic_path
    from sklearn_sed.plotting import plot_training
    from sklearn_sed.training.net import history_to_rows

    fig = plot_training(
        history_to_rows(sed.net_.history),
        f1,
        classes=sed.classes_,
        best_epoch=sed.best_epoch_,
        title=f"validation of {os.path.basename(figure)[: -len('.training.png')]}",
    )
    with atomic_path(figure, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    print(f"wrote {figure} (per-class F1 and the validation curve)")


def _train_folders(args):
    """Return the audio folder of each TSV given to ``train``, checked to exist."""
    folders = {}
    for kind, tsv, own in (
        ("strong", args.strong_tsv, args.strong_audio_dir),
        ("weak", args.weak_tsv, args.weak_audio_dir),
        ("unlabeled", args.unlabeled_tsv, args.unlabeled_audio_dir),
        ("valid", args.valid_tsv, args.valid_audio_dir),
    ):
        if tsv is None:
            if own is not None:
                raise CLIError(f"--{kind}-audio-dir was given without --{kind}-tsv.")
            continue
        folder = own if own is not None else args.audio_dir
        if folder is None:
            raise CLIError(
                f"--{kind}-tsv {tsv!r} has no audio folder: give --{kind}-audio-dir "
                "(its own folder, as in DESED) or --audio-dir (one folder for all)."
            )
        if not os.path.isdir(folder):
            flag = f"--{kind}-audio-dir" if own is not None else "--audio-dir"
            raise CLIError(f"{flag} {folder!r} is not a folder.")
        folders[kind] = folder
    if not folders.keys() & {"strong", "weak"}:
        raise CLIError("train needs --strong-tsv, --weak-tsv or both.")
    return folders


def _load_listed(flags, **tsvs):
    """``load_desed``, with missing audio reported by the flag that fixes it.

    ``flags`` maps ``load_desed``'s TSV kinds to this command's flag names.
    """
    from sklearn_sed.datasets import MissingAudioError, load_desed

    try:
        return load_desed(**tsvs)
    except MissingAudioError as exc:
        raise CLIError(
            f"{exc.tsv}: {len(exc.missing)} of its {exc.n_listed} audio file(s) are "
            f"not in {exc.folder!r}, e.g. {exc.missing[0]!r}. Give this TSV its "
            f"audio folder with --{flags[exc.kind]}-audio-dir."
        ) from None


def _walk(folder):
    """List ``(folder, file names)`` of a tree, symlinked sub-folders included.

    Each real folder is visited once, so a link that loops back ends the
    descent there.
    """
    visited, out = set(), []
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        out.append((root, names))
    return sorted(out)


def _audio_files(inputs):
    """Return ``(key, path)`` of every audio file; keys never repeat.

    The key is the path relative to the folder given (the base name for a
    file given directly), so files of one name in two sub-folders stay apart.
    """
    files, seen = [], {}
    for item in inputs:
        if os.path.isdir(item):
            for root, names in _walk(item):
                for n in sorted(names):
                    if n.lower().endswith(_AUDIO_EXTENSIONS):
                        path = os.path.join(root, n)
                        key = os.path.relpath(path, item).replace(os.sep, "/")
                        files.append((key, path))
        else:
            files.append((os.path.basename(item), item))
    if not files:
        raise CLIError(f"no audio file found in {inputs}.")
    for key, path in files:
        if key in seen:
            raise CLIError(
                f"{seen[key]!r} and {path!r} would both be reported as {key!r}; "
                "give their common folder instead of the files."
            )
        seen[key] = path
    return files


def _per_class(option, value, classes, current):
    """Parse ``--threshold 0.4`` or ``--threshold Speech=0.3,Dog=0.6``.

    Classes not named keep ``current`` (the model's own setting).
    """
    out = np.array(current, dtype=float, copy=True)
    names = [str(c) for c in classes]
    try:
        if "=" not in value:
            out[:] = float(value)
            return out
        for part in value.split(","):
            name, _, number = part.partition("=")
            if name.strip() not in names:
                raise CLIError(
                    f"{option} {value}: unknown class {name.strip()!r}; the model's "
                    f"classes are {names}."
                )
            out[names.index(name.strip())] = float(number)
    except ValueError:
        raise CLIError(
            f"{option} must be a number or CLASS=NUMBER pairs separated by commas. "
            f"Got {value!r} instead."
        ) from None
    return out


#: Longest median filter the command line takes (a minute; DCASE uses < 2 s).
_MAX_MEDIAN_FILTER_SEC = 60.0


def _override_decoding(sed, args):
    """Apply ``--threshold`` and ``--median-filter`` to the loaded model."""
    if args.threshold is None and args.median_filter is None:
        return
    threshold, median, low = sed.decoding_settings()
    if args.threshold is not None:
        threshold = _per_class("--threshold", args.threshold, sed.classes_, threshold)
        if not ((threshold >= 0) & (threshold <= 1)).all():
            raise CLIError(f"--threshold {args.threshold}: values must be in [0, 1].")
    if args.median_filter is not None:
        median = _per_class("--median-filter", args.median_filter, sed.classes_, median)
        if not ((median >= 0) & (median <= _MAX_MEDIAN_FILTER_SEC)).all():
            raise CLIError(
                f"--median-filter {args.median_filter}: lengths must be numbers of "
                f"seconds in [0, {_MAX_MEDIAN_FILTER_SEC:g}]."
            )
    from sklearn_sed.decoding.decode import Decoder

    decoder = sed.decoder if sed.decoder is not None else Decoder()
    sed.set_params(
        decoder=Decoder(
            threshold=threshold.tolist(),
            median_filter_sec=median.tolist(),
            # The tuned hysteresis stays, lowered where a new threshold is below it.
            low_threshold=np.minimum(low, threshold).tolist(),
            order=decoder.order,
        )
    )


def _sed_scores_eval():
    """Return the sed_scores_eval package (``--scores-dir``) or a one-line error."""
    from sklearn_sed.metrics.psds import sed_scores_eval

    try:
        return sed_scores_eval()
    except ImportError as exc:
        raise CLIError(f"--scores-dir: {exc}") from None


def _scores_path(folder, key):
    """Return the score file of the recording ``key`` (its path minus extension)."""
    return os.path.join(folder, os.path.splitext(key)[0] + ".tsv")


def _check_scores_targets(args, files):
    """Refuse, before any work, score files that would clash or overwrite.

    Two recordings of one name (``a.wav``, ``a.flac``) would write one file;
    an existing file that is not a score table, or is an input, is the
    user's.
    """
    # Each input's file identity once, so that thousands of recordings cost
    # one lookup per score file, not one comparison per pair.
    inputs = {}
    for item in [args.model, args.output, *args.audio, *(p for _, p in files)]:
        identity = _file_identity(item)
        if identity is not None:
            inputs.setdefault(identity, item)
    targets = {}
    for key, path in files:
        target = _scores_path(args.scores_dir, key)
        if target in targets:
            raise CLIError(
                f"--scores-dir: {targets[target]!r} and {path!r} would both write "
                f"{target!r}. Rename one of them, or predict them separately."
            )
        targets[target] = path
        item = inputs.get(_file_identity(target))
        if item is not None:
            raise CLIError(
                f"--scores-dir would overwrite {item!r}, an input, with the "
                f"scores of {path!r}. Choose another folder."
            )
        _check_replaceable(target, "scores", "--scores-dir")


def _write_scores(folder, key, sed, probs, frame_sec, length_sec):
    """Write one recording's frame probabilities as a sed_scores_eval TSV."""
    io = _sed_scores_eval().io
    n = min(len(probs), max(1, int(np.ceil(length_sec / frame_sec))))
    timestamps = np.minimum(np.arange(n + 1) * frame_sec, length_sec)
    path = _scores_path(folder, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    io.write_sed_scores(
        probs[:n],
        path,
        timestamps=timestamps,
        event_classes=[str(c) for c in sed.classes_],
    )


def _cmd_predict(args):
    from sklearn_sed.datasets import write_events_tsv
    from sklearn_sed.inference import decode_file_frames, predict_file_frames

    files = _audio_files(args.audio)
    _check_output(
        args.output, [args.model, *args.audio, *(p for _, p in files)], kind="events"
    )
    _check_folder("--scores-dir", args.scores_dir, parent_must_exist=True)
    if args.scores_dir:
        _check_scores_targets(args, files)
    model = _load_model(args.model, allow_pickle=args.allow_pickle)
    sed = model[-1]
    if hasattr(model[0], "verbose"):  # one overall bar, not one per file
        model[0].set_params(verbose=0)
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    if args.bfloat16:
        sed.set_params(inference_dtype="bfloat16")
    _override_decoding(sed, args)
    results, failed = {}, []
    for key, path in _progress(files, args.progress, "predict"):
        try:
            frames = predict_file_frames(model, path, overlap=args.overlap)
        except (FileNotFoundError, ValueError) as exc:
            if not args.skip_errors:
                raise
            failed.append(path)
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        results[key] = decode_file_frames(sed, *frames)
        if args.scores_dir:
            _write_scores(args.scores_dir, key, sed, *frames)
    if failed and not results:
        # Nothing was processed: the output (perhaps an earlier run's) stays.
        raise CLIError(f"no file could be processed; {args.output!r} is unchanged.")
    write_events_tsv(args.output, results)
    n_events = sum(len(v) for v in results.values())
    print(
        f"wrote {n_events} events for {len(results)} file(s) to {args.output}"
        + (f"; {len(failed)} file(s) skipped" if failed else "")
        + (f"; frame scores in {args.scores_dir}" if args.scores_dir else "")
    )


def _progress(items, enabled, what):
    """Yield ``items`` with one overall progress bar on stderr when enabled."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=what, unit="file", file=sys.stderr)


def _cmd_evaluate(args):
    from sklearn_sed.datasets import read_strong_tsv
    from sklearn_sed.metrics.scoring import finite_or_zero, sed_eval_results

    ref = read_strong_tsv(args.reference, classes=None)
    pred = read_strong_tsv(args.prediction, classes=None)
    if not ref:
        raise CLIError(f"{args.reference}: the reference lists no file.")
    unknown = sorted(set(pred) - set(ref))
    if unknown:
        print(
            f"warning: {len(unknown)} predicted file(s) are not in the reference, "
            f"e.g. {unknown[0]!r}; they are ignored.",
            file=sys.stderr,
        )
    names = list(ref)
    y_true = [ref[n] for n in names]
    y_pred = [pred.get(n, []) for n in names]
    # Output classes that the reference lacks are scored too: their events
    # are false positives (sed_eval with the union of the labels).
    classes = sorted({e[2] for evs in y_true + y_pred for e in evs})
    out = {}
    for metric in ("event", "segment"):
        res = sed_eval_results(y_true, y_pred, metric=metric, classes=classes)
        avg = res["class_wise_average"]["f_measure"]
        out[metric] = {
            "macro_f1": finite_or_zero(avg["f_measure"]),
            "micro_f1": finite_or_zero(res["overall"]["f_measure"]["f_measure"]),
            # A class with references but no output scores 0, as the macro
            # mean counts it (sed_eval's own per-class value is NaN).
            "per_class_f1": {
                c: finite_or_zero(res["class_wise"][c]["f_measure"]["f_measure"])
                for c in classes
            },
        }
        if "f_measure_sed_eval" in avg:
            out[metric]["macro_f1_sed_eval"] = finite_or_zero(avg["f_measure_sed_eval"])
    if args.scores_dir:
        out["psds"] = _psds_from_scores(args.scores_dir, ref)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if "psds" in out:
        p = out["psds"]
        print(f"PSDS1 {p['psds1']:.3f}, PSDS2 {p['psds2']:.3f} ({p['n_files']} files)")
    for metric in ("event", "segment"):
        r = out[metric]
        print(
            f"{metric}-based F1: macro {100 * r['macro_f1']:.2f} %, "
            f"micro {100 * r['micro_f1']:.2f} %"
        )
        if "macro_f1_sed_eval" in r:
            print(
                f"  (sed_eval's macro mean, skipping classes never output: "
                f"{100 * r['macro_f1_sed_eval']:.2f} %)"
            )
    print(f"\n{'class':30s} {'event F1':>9s} {'segment F1':>11s}")
    for c in classes:
        e, s = out["event"]["per_class_f1"][c], out["segment"]["per_class_f1"][c]
        print(f"{c:30s} {100 * e:8.2f}% {100 * s:10.2f}%")


def _psds_from_scores(folder, reference):
    """PSDS1 and PSDS2 of the score files in ``folder`` against ``reference``."""
    from sklearn_sed.metrics.psds import psds_from_scores

    io = _sed_scores_eval().io

    if not os.path.isdir(folder):
        raise CLIError(f"--scores-dir {folder!r} is not a folder.")
    scores = {}
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            if name.endswith(".tsv"):
                path = os.path.join(root, name)
                key = os.path.relpath(path, folder)[: -len(".tsv")]
                try:
                    scores[key.replace(os.sep, "/")] = io.read_sed_scores(path)
                except Exception as exc:  # pandas and sed_scores_eval raise many
                    raise CLIError(f"{path}: not a score file ({exc}).") from None
    truth = {os.path.splitext(name)[0]: events for name, events in reference.items()}
    missing = sorted(set(truth) - set(scores))
    if missing:
        raise CLIError(
            f"{len(missing)} reference file(s) have no score file in {folder!r}, "
            f"e.g. {missing[0]!r}.tsv; run predict --scores-dir on every file."
        )
    scores = {k: scores[k] for k in truth}
    durations = {k: float(df["offset"].iloc[-1]) for k, df in scores.items()}
    return {
        "n_files": len(scores),
        **{
            f"psds{n}": psds_from_scores(scores, truth, durations, scenario=n)
            for n in (1, 2)
        },
    }


def _cmd_plot(args):
    from sklearn_sed.audio.features import audio_info, load_audio, log_mel_spectrogram
    from sklearn_sed.datasets import read_strong_tsv
    from sklearn_sed.inference import decode_file_frames, predict_file_frames
    from sklearn_sed.plotting import plot_detection

    _check_output(args.output, [args.model, args.audio, args.reference], kind="figure")
    info = audio_info(args.audio)  # the span is checked before any work
    length = info.frames / info.samplerate
    start = 0.0 if args.start is None else args.start
    end = length if args.end is None else min(args.end, length)
    if not 0 <= start < end:
        raise CLIError(
            f"--start {start} / --end {end}: need 0 <= start < end <= the "
            f"recording's {length:.2f} s."
        )
    model = _load_model(args.model, allow_pickle=args.allow_pickle)
    sed, extractor = model[-1], model[0]
    if hasattr(extractor, "verbose"):
        extractor.set_params(verbose=0)
    probs, frame_sec, length = predict_file_frames(model, args.audio)
    events = decode_file_frames(sed, probs, frame_sec, length)
    ext = extractor.get_params()
    y = load_audio(args.audio, sr=ext["sr"], offset=start, duration=end - start)
    spectrogram = log_mel_spectrogram(
        y,
        **{
            k: ext[k]
            for k in ("sr", "n_fft", "hop_length", "win_length", "n_mels", "fmin")
        },
        fmax=ext["fmax"],
        top_db=ext.get("top_db", 80.0),
    )
    first, last = int(start / frame_sec), int(np.ceil(end / frame_sec))
    probs = probs[first:last]

    def crop(evs):
        return [
            (max(a, start) - start, min(b, end) - start, c)
            for a, b, c in evs
            if b > start and a < end
        ]

    reference = None
    if args.reference:
        ref = read_strong_tsv(args.reference, classes=None)
        reference = crop(ref.get(os.path.basename(args.audio), []))
    span = f" ({start:.1f}-{end:.1f} s)" if (start, end) != (0.0, length) else ""
    fig = plot_detection(
        spectrogram,
        probs,
        crop(events),
        classes=sed.classes_,
        duration=end - start,
        reference=reference,
        title=os.path.basename(args.audio) + span,
        threshold=sed.decoding_settings()[0],
        sr=ext["sr"],
        hop_length=ext["hop_length"],
        fmin=ext["fmin"],
        fmax=ext["fmax"],
    )
    fig.savefig(args.output, dpi=100)
    print(f"saved {args.output}")


_PICKLE_HELP = (
    "also read a joblib/pickle model file. Loading a pickle runs whatever code "
    "the file holds: use it only for files you made yourself"
)


def _recipes_epilog(order):
    """Return the recipes, one paragraph each, with what they measured and need."""
    import textwrap

    from sklearn_sed.recipes import RECIPE_CARDS

    def wrap(text, first="", rest=""):
        return textwrap.wrap(
            text, width=78, initial_indent=first, subsequent_indent=rest
        )

    lines = wrap(
        "recipes, with their event-based macro F1 on the benchmark's "
        "validation soundscapes (3-seed mean) and training time "
        "(docs/benchmarks.md):"
    )
    for name in order:
        card = RECIPE_CARDS[name]
        needs = (
            "needs unlabelled clips (--unlabeled-tsv)"
            if card.needs_unlabeled
            else "needs no unlabelled clips"
        )
        lines += [f"  {name}"]
        lines += wrap(card.summary, " " * 4, " " * 4)
        for label, text in (
            ("F1", card.event_f1),
            ("time", card.minutes),
            ("data", needs),
        ):
            lines += wrap(text, f"    {label + ':':<6}", " " * 10)
    lines.append("")
    lines += wrap(
        "Every recipe is compiled where a one-time probe in a child process "
        "proves torch.compile safe and faster on this machine (docs/recipe.md; "
        "SKLEARN_SED_PROBE=off trains eagerly); --set train_dtype=auto also "
        "lets it choose bfloat16 on CPUs with AVX-512 BF16 or AMX."
    )
    return "\n".join(lines)


def build_parser():
    """Return the argument parser of ``sklearn-sed``."""
    from sklearn_sed.demo import run_demo
    from sklearn_sed.networks.registry import NETWORKS
    from sklearn_sed.recipes import RECIPES

    # The report's method first, then the best measured, then the others.
    RECIPE_ORDER = [
        "cpu",
        "dcase2019",
        *sorted(set(RECIPES) - {"cpu", "dcase2019"}),
    ]

    parser = argparse.ArgumentParser(
        prog="sklearn-sed",
        description="Sound event detection with class-frame "
        "pseudo labels (NEC DCASE2019), scikit-learn style.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train and compare on the embedded dataset",
        description="Train the ResNet with and without class-frame pseudo "
        "labels on generated domestic soundscapes (no download), print a "
        "small Table 1 (event- and segment-based macro F1 on test clips) and "
        "the precision of the pseudo labels, and write model.sed, "
        "detection.png and results.json.",
    )
    counts = (
        ("--n-train", "training clips, half strongly and half weakly labelled"),
        ("--n-valid", "strongly labelled test clips, scored and never used "
         "for a choice"),
        ("--n-dev", "strongly labelled development clips: the best epoch and "
         "the per-class thresholds and median filters"),
        ("--n-filters", "ResNet width (the report's is 64)"),
        ("--max-epochs", "stage-1 epochs; the model without pseudo labels "
         "trains max-epochs + max-iter epochs, the same budget"),
        ("--max-iter", "pseudo-labelling iterations of stage 2, one epoch each"),
        ("--batch-size", "clips per training step"),
    )  # fmt: skip
    # The defaults are run_demo's own, so that the two never disagree.
    defaults = {
        name: p.default for name, p in inspect.signature(run_demo).parameters.items()
    }
    for flag, text in counts:
        demo.add_argument(
            flag,
            type=_positive_int(flag),
            default=defaults[flag[2:].replace("-", "_")],
            help=f"{text} (default: %(default)s)",
        )
    demo.add_argument(
        "--output-dir",
        default=defaults["output_dir"],
        help="folder for model.sed, detection.png and results.json (created; "
        "default: %(default)s)",
    )
    demo.add_argument(
        "--random-state",
        type=int,
        default=defaults["random_state"],
        help="seed of the data and the networks (default: %(default)s)",
    )
    demo.add_argument(
        "--quiet",
        action="store_true",
        help="print only the summary, not a line per training epoch",
    )
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser(
        "train",
        help="train on a DESED-layout dataset",
        description="Train a detector on DESED-layout TSV files and audio "
        "folders and write it as a model file (sklearn_sed.load).",
        epilog=_recipes_epilog(RECIPE_ORDER),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--audio-dir",
        help="one folder holding the audio of every TSV (the default of the "
        "per-TSV folders below)",
    )
    train.add_argument("--strong-tsv", help="strong labels (DESED strong TSV)")
    train.add_argument("--weak-tsv", help="weak labels (DESED weak TSV)")
    train.add_argument(
        "--unlabeled-tsv",
        help="clips without labels (DESED's unlabel_in_domain TSV, a 'filename' "
        "column): pseudo-labelled when the network is confident of every class, "
        "and seen by the consistency cost with --set mean_teacher=...",
    )
    train.add_argument(
        "--valid-tsv",
        help="strong labels of validation clips: the best epoch is kept and, "
        "with the cpu recipe, thresholds and median filters are tuned per "
        "class on them",
    )
    train.add_argument(
        "--strong-audio-dir", help="audio folder of --strong-tsv (DESED layout)"
    )
    train.add_argument("--weak-audio-dir", help="audio folder of --weak-tsv")
    train.add_argument("--unlabeled-audio-dir", help="audio folder of --unlabeled-tsv")
    train.add_argument("--valid-audio-dir", help="audio folder of --valid-tsv")
    train.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="cpu",
        help="named settings (sklearn_sed.recipes), listed with what they "
        "measured below (default: %(default)s)",
    )
    train.add_argument(
        "--network",
        choices=sorted(NETWORKS),
        default=None,
        help="the network trained, instead of the recipe's: 'resnet' (the "
        "report's, at the recipe's n_filters and n_blocks) or 'crnn' (the "
        "DCASE2019 baseline's, 32 filters); other sizes with --set "
        "module=crnn(n_filters=64, hidden_size=128)",
    )
    train.add_argument(
        "--teacher",
        choices=("none", "crnn"),
        default=None,
        help="where the pseudo labels come from (default: the recipe's): "
        "'none', the ResNet itself as in the report ('cpu', 'paper'); "
        "'crnn', a CRNN trained first on the same clips with the student's "
        "settings (sklearn_sed.recipes.make_teacher; 'cpu_teacher'; not in "
        "the report; about twice the training time)",
    )
    train.add_argument(
        "--output", required=True, help="model file, safe format (sklearn_sed.load)"
    )
    train.add_argument(
        "--no-figure",
        action="store_true",
        help="with --valid-tsv, do not write OUTPUT's stem + .training.png (the "
        "kept epoch's per-class F1 and the validation curve of each epoch)",
    )
    train.add_argument(
        "--checkpoint-dir",
        help="checkpoint after every epoch; rerunning the same command resumes from it",
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="estimator parameter, e.g. max_epochs=5, pseudolabelsed__lr=0.01, "
        "decoder__threshold=0.4, 'mean_teacher=MeanTeacher()' (a parameter "
        "object, literal fields only) or 'module=crnn(n_filters=64)' (a named "
        "network, literal fields only); repeatable",
    )
    train.set_defaults(func=_cmd_train)

    predict = sub.add_parser("predict", help="detect events in audio files")
    predict.add_argument(
        "model", help="model file written by train or sklearn_sed.save"
    )
    predict.add_argument(
        "audio",
        nargs="+",
        help="audio files, or folders searched recursively for audio files",
    )
    predict.add_argument(
        "--output",
        required=True,
        help="events TSV to write (filename, onset, offset, event_label; DESED "
        "format); never one of the inputs",
    )
    predict.add_argument(
        "--overlap",
        type=float,
        default=0.5,
        help="fraction by which the clip-long windows of a longer recording "
        "overlap before their frame probabilities are stitched (default: "
        "%(default)s)",
    )
    predict.add_argument(
        "--skip-errors",
        action="store_true",
        help="report a file that cannot be read and go on with the others "
        "(the exit status is still 2 if any failed)",
    )
    predict.add_argument(
        "--threshold",
        help="decision threshold instead of the model's: one number for every "
        "class, or CLASS=NUMBER pairs separated by commas (the classes not "
        "named keep the model's)",
    )
    predict.add_argument(
        "--median-filter",
        help="median-filter length in seconds instead of the model's; one "
        "number or CLASS=SECONDS pairs, as --threshold",
    )
    predict.add_argument(
        "--scores-dir",
        help="also write each file's frame probabilities as a sed_scores_eval "
        "TSV (onset, offset, one column per class) into this folder, for "
        "threshold-free evaluation (evaluate --scores-dir)",
    )
    predict.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one progress bar over all files (default: when stderr is a terminal)",
    )
    predict.add_argument("--allow-pickle", action="store_true", help=_PICKLE_HELP)
    predict.add_argument(
        "--bfloat16",
        action="store_true",
        help="run the network in bfloat16 (about 2x faster on CPUs with "
        "AVX-512 BF16; check the F1 on your data)",
    )
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser("evaluate", help="F1 scores of predictions (sed_eval)")
    evaluate.add_argument("prediction", help="events TSV written by predict")
    evaluate.add_argument("reference", help="reference events TSV (DESED format)")
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print the scores as JSON (macro, micro and per-class F1) instead "
        "of a table",
    )
    evaluate.add_argument(
        "--scores-dir",
        help="frame scores written by predict --scores-dir: adds PSDS1 and PSDS2 "
        "(DCASE settings, sed_scores_eval)",
    )
    evaluate.set_defaults(func=_cmd_evaluate)

    plot = sub.add_parser("plot", help="figure of a file's detections")
    plot.add_argument("model", help="model file written by train or sklearn_sed.save")
    plot.add_argument("audio", help="one audio file")
    plot.add_argument("--output", required=True, help="figure file to write (PNG)")
    plot.add_argument("--reference", help="reference events TSV to draw")
    plot.add_argument("--start", type=float, help="first second drawn (default 0)")
    plot.add_argument(
        "--end", type=float, help="last second drawn (default: the whole file)"
    )
    plot.add_argument("--allow-pickle", action="store_true", help=_PICKLE_HELP)
    plot.set_defaults(func=_cmd_plot)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def one_line_warning(message, category, *_, **__):
        print(
            f"sklearn-sed {args.command}: warning: {_one_line(message)}",
            file=sys.stderr,
        )

    try:
        with warnings.catch_warnings():
            # A warning is a line of the command's, not a source listing.
            warnings.showwarning = one_line_warning
            args.func(args)
    except (
        CLIError,
        FileNotFoundError,
        ValueError,
        TypeError,
        OSError,
        RecursionError,
    ) as exc:
        print(f"sklearn-sed {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("SKLEARN_SED_DEBUG"):
            raise
        print(
            f"sklearn-sed {args.command}: internal error: {type(exc).__name__}: "
            f"{_one_line(exc)} (set SKLEARN_SED_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def run():
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
