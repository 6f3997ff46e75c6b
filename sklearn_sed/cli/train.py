"""``sklearn-sed train``: a recipe, a network and ``--set`` on DESED files.

Writes the model file, then prints the kept epoch's per-class F1 and draws
its figure.
"""

import argparse
import os
import sys

import numpy as np

from sklearn_sed.cli._common import (
    CLIError,
    check_folder,
    check_output,
    check_replaceable,
    save_model,
)
from sklearn_sed.cli.settings import apply_set, parse_set


def _train_pipeline(args):
    """Build the unfitted pipeline of ``train``: recipe, network, ``--set``, teacher."""
    from sklearn_sed.audio.features import LogMelExtractor
    from sklearn_sed.pipeline import make_pipeline
    from sklearn_sed.recipes import RECIPES, make_detector, make_teacher

    # An epoch table always; a bar over each epoch's batches on a terminal.
    verbose = 2 if sys.stderr.isatty() else 1
    # The teacher is built after --set, from the student's settings.
    recipe_teacher = getattr(RECIPES[args.recipe].get("pseudo_labels"), "teacher", None)
    settings = parse_set(args.set)
    if args.network is not None and any(
        k.rpartition("__")[2] == "module" for k in settings
    ):
        raise CLIError(
            "--network and --set module=... both choose the network. Give one of them."
        )
    embedding = embedding_spec(args.embeddings)
    network = args.network
    if embedding is not None:
        if network not in (None, "embedding_crnn") or any(
            k.rpartition("__")[2] == "module" for k in settings
        ):
            raise CLIError(
                "--embeddings trains the embedding CRNN (the embeddings fused "
                "before its GRU); drop --network and --set module=..."
            )
        if (args.teacher or recipe_teacher or "none") == "crnn":
            raise CLIError(
                "--embeddings and --teacher crnn cannot be combined: the CRNN "
                "teacher reads log-mel maps only. Drop --teacher crnn."
            )
        network = "embedding_crnn"
    # The recipe's teacher shorthand is resolved below, after --set.
    no_teacher = {"pseudo_labels__teacher": None} if recipe_teacher else {}
    try:
        student = make_detector(
            args.recipe, network=network, verbose=verbose, **no_teacher
        )
    except ValueError as exc:
        raise CLIError(f"--network: {exc}") from None
    features = LogMelExtractor(verbose=1)
    if embedding is not None:
        from sklearn_sed.embeddings.fusion import FusedFeatures
        from sklearn_sed.embeddings.transformer import PretrainedEmbedding

        name, path = embedding
        features = FusedFeatures(
            PretrainedEmbedding(path, model=name, verbose=1), features
        )
    pipe = make_pipeline(features, student)
    apply_set(pipe, settings)
    extractor, sed = pipe[0], pipe[-1]
    _check_embedding_network(sed, extractor)
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


def embedding_spec(value):
    """Parse ``--embeddings NAME:PATH`` into ``(name, path)``; None for None."""
    if value is None:
        return None
    from sklearn_sed.embeddings.models import EMBEDDING_MODELS

    name, sep, path = value.partition(":")
    if not sep or name not in EMBEDDING_MODELS or not path:
        raise CLIError(
            f"--embeddings {value!r}: expected NAME:PATH, NAME one of "
            f"{sorted(EMBEDDING_MODELS)} and PATH its checkpoint file, e.g. "
            "panns-cnn14:Cnn14_mAP=0.431.pth."
        )
    if not os.path.isfile(path):
        raise CLIError(
            f"--embeddings: checkpoint {path!r} does not exist (or is not a "
            "file). docs/embeddings.md says where to download each."
        )
    return name, path


def _align_embedding_frames(fused):
    """Give the embedding one frame per CRNN output frame (8 log-mel frames)."""
    from sklearn_sed.audio.reading import clip_frames

    logmel = fused.logmel
    n_frames = clip_frames(logmel.duration, logmel.sr, logmel.hop_length)
    if n_frames % 8:
        raise CLIError(
            f"with --embeddings the log-mel frames per clip must be a multiple of "
            f"8 (the CRNN's time pooling); these settings give {n_frames}. Adjust "
            "duration or hop_length (the defaults give 1024)."
        )
    fused.embedding.set_params(n_frames=n_frames // 8)


def _check_embedding_network(sed, extractor):
    """Refuse the embedding CRNN without embeddings to read."""
    from sklearn_sed.networks.registry import network_name

    if network_name(sed.module) == "embedding_crnn" and not hasattr(
        extractor, "embedding"
    ):
        raise CLIError(
            "the embedding CRNN reads pretrained embeddings beside the log-mel "
            "features: give --embeddings NAME:PATH (it chooses this network)."
        )


def _match_network_to_features(sed, extractor):
    """Give a named CRNN the extractor's mel bands, unless its fields set them.

    The embedding CRNN gets the embedding's dimension too.
    """
    import functools

    from sklearn_sed.networks.registry import network_name

    module = sed.module
    if network_name(module) == "embedding_crnn" and isinstance(
        module, functools.partial
    ):
        from sklearn_sed.embeddings.models import model_spec

        fields = {"n_mels": extractor.n_mels}
        if hasattr(extractor, "embedding"):
            fields["embed_dim"] = model_spec(extractor.embedding.model)["dim"]
            _align_embedding_frames(extractor)
        fields = {k: v for k, v in fields.items() if k not in module.keywords}
        sed.set_params(module=functools.partial(module, **fields))
        return
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
    check_output(
        args.output,
        [
            args.strong_tsv,
            args.weak_tsv,
            args.unlabeled_tsv,
            args.valid_tsv,
            *folders.values(),
            *(embedding_spec(args.embeddings) or ())[1:],
        ],
        kind="model",
    )
    check_folder("--checkpoint-dir", args.checkpoint_dir)
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
    check_output(args.output, [*X, *X_val])
    from sklearn_sed.pipeline import check_training_lengths

    check_training_lengths(
        X, duration=extractor.duration, sr=extractor.sr_in or extractor.sr
    )
    features = extractor.fit_transform(X)
    if args.valid_tsv:
        validation = {"X_val": extractor.transform(X_val), "y_val": y_val}
    sed.fit(features, y_weak, y_strong, **validation)
    save_model(pipe, args.output)
    print(f"saved {args.output}")
    _report_training(sed, validation, figure)


def _training_figure_path(args):
    """Return the figure written beside the model (checked first), or None."""
    if not args.valid_tsv or args.no_figure:
        return None
    figure = os.path.splitext(args.output)[0] + ".training.png"
    check_replaceable(figure, "figure", flag="--output (its training figure)")
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


def add_parser(sub):
    """Add the ``train`` command to ``sub`` (argparse subparsers)."""
    from sklearn_sed.networks.registry import NETWORKS
    from sklearn_sed.recipes import RECIPES

    # The report's method first, then the best measured, then the others.
    RECIPE_ORDER = [
        "cpu",
        "dcase2019",
        *sorted(set(RECIPES) - {"cpu", "dcase2019"}),
    ]
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
        "module=crnn(n_filters=64, hidden_size=128); 'embedding_crnn' is "
        "what --embeddings trains",
    )
    train.add_argument(
        "--embeddings",
        metavar="NAME:PATH",
        help="fuse a pretrained network's frame embeddings with the log-mel "
        "features (late fusion before the GRU of the embedding CRNN, as the "
        "DCASE baselines since 2023): NAME is panns-cnn14, panns-cnn14-16k or "
        "beats, "
        "PATH its checkpoint file (docs/embeddings.md); the network runs once "
        "per clip and never trains",
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
