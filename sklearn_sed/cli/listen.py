"""``sklearn-sed listen``: events of a live stream, each printed once."""

import datetime
import os
import sys
import time

from sklearn_sed.cli._common import (
    CHECKPOINT_HELP,
    PICKLE_HELP,
    CLIError,
    load_detector,
)

#: The columns printed, one line per event.
HEADER = "onset\toffset\tevent_label\tstatus\twall_clock"


def _print_events(events):
    now = datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")
    for e in events:
        status = "ongoing" if e.ongoing else "ended"
        print(f"{e.onset:.3f}\t{e.offset:.3f}\t{e.label}\t{status}\t{now}", flush=True)


def _stream(args):
    """Return the input as a PCMStream (standard input, or a file)."""
    from sklearn_sed.deploy.pcm import PCMStream

    raw = None
    if args.raw:
        raw = {
            "rate": args.rate,
            "channels": args.channels,
            "sample_format": args.sample_format,
        }
    elif args.rate is not None or args.channels != 1 or args.sample_format != "s16le":
        raise CLIError(
            "--rate, --channels and --sample-format describe raw PCM: add --raw."
        )
    if args.raw and args.rate is None:
        raise CLIError("--raw needs --rate (the stream's sample rate in Hz).")
    if args.input == "-":
        fd = sys.stdin.buffer.fileno()
    else:
        if not os.path.isfile(args.input):
            raise CLIError(f"--input {args.input!r} is not a file.")
        fd = os.open(args.input, os.O_RDONLY)
    return PCMStream(fd, raw=raw, stall_timeout=args.stall_timeout)


def _cmd_listen(args):
    from sklearn_sed.deploy.pcm import StreamError
    from sklearn_sed.deploy.streaming import StreamingDetector

    model = load_detector(
        args.model, allow_pickle=args.allow_pickle, checkpoint=args.checkpoint
    )
    stream = _stream(args)
    detector = StreamingDetector(
        model,
        sr=stream.rate,
        hop=args.hop,
        merge=args.merge,
        max_latency=args.max_latency,
        max_event_sec=args.max_event_sec,
    )
    print(HEADER, flush=True)
    block = detector.hop_sec
    start = time.monotonic()
    try:
        for samples in stream.blocks(block):
            if args.realtime:  # a file read at its real rate
                ahead = stream.seconds - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            _print_events(detector.push(samples))
    except KeyboardInterrupt:
        print("interrupted: the events still open are printed", file=sys.stderr)
        # The samples received since the last whole block count too.
        _print_events(detector.push(stream.drain()))
    except StreamError as exc:
        _print_events(detector.flush())  # nothing detected is lost
        raise CLIError(f"{exc} The events detected until then were printed.") from None
    _print_events(detector.flush())


def add_parser(sub):
    """Add the ``listen`` command to ``sub`` (argparse subparsers)."""
    listen = sub.add_parser(
        "listen",
        help="detect events on a live stream (WAV or raw PCM on standard input)",
        description="Detect events on a live stream and print each once, as "
        "soon as it has ended (or has lasted --max-event-sec), as a TSV line: "
        "onset and offset in seconds since the stream started, label, "
        "'ended' or 'ongoing', and the wall-clock time. A window of the "
        "model's clip length advances by --hop; the probabilities of "
        "overlapping windows are merged (--merge) and decoded as predict "
        "does. Examples: arecord -f S16_LE -r 44100 -c 1 -t wav | sklearn-sed "
        "listen model.sed; ffmpeg -i URL -f wav -acodec pcm_s16le - | "
        "sklearn-sed listen model.onnx. End of stream or Ctrl-C prints the "
        "events still open.",
    )
    listen.add_argument(
        "model", help="model file (sklearn-sed train) or ONNX file (sklearn-sed export)"
    )
    listen.add_argument(
        "--input",
        default="-",
        help="'-' (standard input, default) or a file read as a stream",
    )
    listen.add_argument(
        "--raw",
        action="store_true",
        help="raw PCM instead of WAV (give --rate, --channels, --sample-format)",
    )
    listen.add_argument("--rate", type=int, help="raw PCM: sample rate in Hz")
    listen.add_argument(
        "--channels", type=int, default=1, help="raw PCM: channels (default: 1)"
    )
    listen.add_argument(
        "--sample-format",
        default="s16le",
        choices=("s16le", "s32le", "f32le"),
        help="raw PCM: sample format (default: s16le)",
    )
    listen.add_argument(
        "--hop",
        type=float,
        default=1.0,
        help="seconds between window starts (default: 1.0); the windows a "
        "frame is merged over are the clip length / hop",
    )
    listen.add_argument(
        "--merge",
        choices=("mean", "max"),
        default="mean",
        help="how overlapping windows' probabilities merge (default: mean, "
        "as predict does for long files)",
    )
    listen.add_argument(
        "--max-latency",
        type=float,
        default=None,
        help="seconds of audio after a frame that make it final (fewer windows "
        "merged, less delay); default: every window that covers it (predict's "
        "events, a delay of about the clip length)",
    )
    listen.add_argument(
        "--max-event-sec",
        type=float,
        default=30.0,
        help="report an event still going on after this many seconds, once, "
        "as 'ongoing' (default: 30)",
    )
    listen.add_argument(
        "--realtime",
        action="store_true",
        help="read --input at its real rate (to test a deployment with a file)",
    )
    listen.add_argument(
        "--stall-timeout",
        type=float,
        default=10.0,
        help="seconds without audio after which the stream counts as stalled "
        "(default: 10): the events so far are printed and listen stops",
    )
    listen.add_argument("--allow-pickle", action="store_true", help=PICKLE_HELP)
    listen.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    listen.set_defaults(func=_cmd_listen)
