"""The ``sklearn-sed`` command line: thin wrappers over the public API."""

import argparse
import sys

__all__ = ["main"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _cmd_demo(args):
    from sklearn_sed.demo import run_demo

    run_demo(
        n_train=args.n_train,
        n_valid=args.n_valid,
        max_epochs=args.max_epochs,
        max_iter=args.max_iter,
        output_dir=args.output_dir,
        random_state=args.random_state,
    )


def build_parser():
    """Return the argument parser of ``sklearn-sed``."""
    parser = argparse.ArgumentParser(
        prog="sklearn-sed",
        description="Sound event detection with class-frame "
        "pseudo labels (NEC DCASE2019), scikit-learn style.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train and compare on the embedded dataset")
    demo.add_argument("--n-train", type=int, default=80)
    demo.add_argument("--n-valid", type=int, default=40)
    demo.add_argument("--max-epochs", type=int, default=8)
    demo.add_argument("--max-iter", type=int, default=4)
    demo.add_argument("--output-dir", default="demo_output")
    demo.add_argument("--random-state", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (CLIError, FileNotFoundError, ValueError, TypeError) as exc:
        print(f"sklearn-sed {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run():
    """Console-script entry point."""
    sys.exit(main())
