"""``sklearn-sed predict``: events of audio files of any length.

And, with ``--scores-dir``, the frame scores that PSDS is computed from.
"""

import argparse
import os
import sys

import numpy as np

from sklearn_sed.cli._common import (
    CHECKPOINT_HELP,
    PICKLE_HELP,
    CLIError,
    audio_files,
    check_folder,
    check_output,
    check_replaceable,
    file_identity,
    load_detector,
    progress,
    sed_scores_eval,
)


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


def _override_decoding(model, args):
    """Apply ``--threshold`` and ``--median-filter`` to the loaded model."""
    if args.threshold is None and args.median_filter is None:
        return
    onnx = not hasattr(model, "steps")
    sed = model if onnx else model[-1]
    if onnx:
        d = model.decoding
        threshold, median, low = d.threshold, d.median_filter_sec, d.low_threshold
    else:
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
    # The tuned hysteresis stays, lowered where a new threshold is below it.
    low = np.minimum(low, threshold)
    if onnx:
        import dataclasses

        model.decoding = dataclasses.replace(
            model.decoding,
            threshold=np.asarray(threshold, float),
            median_filter_sec=np.asarray(median, float),
            low_threshold=low,
        )
        return
    from sklearn_sed.decoding.decode import Decoder

    decoder = sed.decoder if sed.decoder is not None else Decoder()
    sed.set_params(
        decoder=Decoder(
            threshold=threshold.tolist(),
            median_filter_sec=median.tolist(),
            low_threshold=low.tolist(),
            order=decoder.order,
        )
    )


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
        identity = file_identity(item)
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
        item = inputs.get(file_identity(target))
        if item is not None:
            raise CLIError(
                f"--scores-dir would overwrite {item!r}, an input, with the "
                f"scores of {path!r}. Choose another folder."
            )
        check_replaceable(target, "scores", "--scores-dir")


def _write_scores(folder, key, sed, probs, frame_sec, length_sec):
    """Write one recording's frame probabilities as a sed_scores_eval TSV."""
    io = sed_scores_eval().io
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

    files = audio_files(args.audio)
    check_output(
        args.output, [args.model, *args.audio, *(p for _, p in files)], kind="events"
    )
    check_folder("--scores-dir", args.scores_dir, parent_must_exist=True)
    if args.scores_dir:
        _check_scores_targets(args, files)
    model = load_detector(
        args.model, allow_pickle=args.allow_pickle, checkpoint=args.checkpoint
    )
    onnx = not hasattr(model, "steps")
    sed = model if onnx else model[-1]  # what decodes, and names the classes
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    if args.bfloat16:
        if onnx:
            raise CLIError(
                "--bfloat16 runs the PyTorch network in bfloat16; an ONNX model "
                "runs as exported (float32). Drop --bfloat16."
            )
        sed.set_params(inference_dtype="bfloat16")
    _override_decoding(model, args)
    results, failed = {}, []
    for key, path in progress(files, args.progress, "predict"):
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


def add_parser(sub):
    """Add the ``predict`` command to ``sub`` (argparse subparsers)."""
    predict = sub.add_parser("predict", help="detect events in audio files")
    predict.add_argument(
        "model",
        help="model file written by train or sklearn_sed.save, or an ONNX file "
        "of sklearn-sed export (run with onnxruntime, without PyTorch)",
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
    predict.add_argument("--allow-pickle", action="store_true", help=PICKLE_HELP)
    predict.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    predict.add_argument(
        "--bfloat16",
        action="store_true",
        help="run the network in bfloat16 (about 2x faster on CPUs with "
        "AVX-512 BF16; check the F1 on your data)",
    )
    predict.set_defaults(func=_cmd_predict)
