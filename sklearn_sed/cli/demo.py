"""``sklearn-sed demo``: train and compare on the embedded dataset."""

import inspect

from sklearn_sed.cli._common import check_folder, positive_int


def _cmd_demo(args):
    from sklearn_sed.demo import run_demo

    check_folder("--output-dir", args.output_dir)

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


def add_parser(sub):
    """Add the ``demo`` command to ``sub`` (argparse subparsers)."""
    from sklearn_sed.demo import run_demo

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
            type=positive_int(flag),
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
