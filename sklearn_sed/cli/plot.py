"""``sklearn-sed plot``: a figure of a file's detections."""

import os

import numpy as np

from sklearn_sed.cli._common import PICKLE_HELP, CLIError, check_output, load_model


def _cmd_plot(args):
    from sklearn_sed.audio.features import audio_info, load_audio, log_mel_spectrogram
    from sklearn_sed.datasets import read_strong_tsv
    from sklearn_sed.inference import decode_file_frames, predict_file_frames
    from sklearn_sed.plotting import plot_detection

    check_output(args.output, [args.model, args.audio, args.reference], kind="figure")
    info = audio_info(args.audio)  # the span is checked before any work
    length = info.frames / info.samplerate
    start = 0.0 if args.start is None else args.start
    end = length if args.end is None else min(args.end, length)
    if not 0 <= start < end:
        raise CLIError(
            f"--start {start} / --end {end}: need 0 <= start < end <= the "
            f"recording's {length:.2f} s."
        )
    model = load_model(args.model, allow_pickle=args.allow_pickle)
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


def add_parser(sub):
    """Add the ``plot`` command to ``sub`` (argparse subparsers)."""
    plot = sub.add_parser("plot", help="figure of a file's detections")
    plot.add_argument("model", help="model file written by train or sklearn_sed.save")
    plot.add_argument("audio", help="one audio file")
    plot.add_argument("--output", required=True, help="figure file to write (PNG)")
    plot.add_argument("--reference", help="reference events TSV to draw")
    plot.add_argument("--start", type=float, help="first second drawn (default 0)")
    plot.add_argument(
        "--end", type=float, help="last second drawn (default: the whole file)"
    )
    plot.add_argument("--allow-pickle", action="store_true", help=PICKLE_HELP)
    plot.set_defaults(func=_cmd_plot)
