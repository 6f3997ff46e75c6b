"""The ``sklearn-sed`` command line: thin wrappers over the public API.

User errors (a missing file, unreadable audio, an unknown label, an empty TSV,
a bad ``--set``, an output that would overwrite an input) print one line and
exit with status 2, never a traceback; anything else prints one line and
exits with status 1 (``SKLEARN_SED_DEBUG=1`` shows the traceback). Models
are written and read in the safe format (:func:`sklearn_sed.save`); a pickle
is read only with ``--allow-pickle``.
"""

import argparse
import os
import sys
import warnings

from sklearn_sed.cli._common import CLIError, one_line

__all__ = ["build_parser", "main", "run"]


#: The commands, in the order ``sklearn-sed --help`` lists them.
COMMANDS = ("demo", "train", "predict", "evaluate", "plot", "listen", "export")


def build_parser():
    """Return the argument parser of ``sklearn-sed``."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="sklearn-sed",
        description="Sound event detection with class-frame "
        "pseudo labels (NEC DCASE2019), scikit-learn style.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"sklearn_sed.cli.{name}").add_parser(sub)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def one_line_warning(message, category, *_, **__):
        print(
            f"sklearn-sed {args.command}: warning: {one_line(message)}",
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
        print(f"sklearn-sed {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("SKLEARN_SED_DEBUG"):
            raise
        print(
            f"sklearn-sed {args.command}: internal error: {type(exc).__name__}: "
            f"{one_line(exc)} (set SKLEARN_SED_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def run():
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
