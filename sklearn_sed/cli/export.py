"""``sklearn-sed export``: a model file's network as ONNX, to run without PyTorch."""

from sklearn_sed.cli._common import PICKLE_HELP, check_output, load_model


def _cmd_export(args):
    from sklearn_sed.deploy.onnx_export import CHECK_ATOL, export_onnx

    check_output(args.output, [args.model], kind="onnx")
    model = load_model(args.model, allow_pickle=args.allow_pickle)
    diff = export_onnx(model, args.output, opset_version=args.opset)
    sed = model[-1]
    print(
        f"wrote {args.output}: {type(sed.net_.module_).__name__}, "
        f"{len(sed.classes_)} classes; onnxruntime's probabilities equal torch's "
        f"within {diff:.2g} (checked, bar {CHECK_ATOL:g}). Run it with "
        'sklearn_sed.deploy.OnnxDetector (pip install "sklearn-sed[onnx]"; no '
        "PyTorch needed)."
    )


def add_parser(sub):
    """Add the ``export`` command to ``sub`` (argparse subparsers)."""
    export = sub.add_parser(
        "export",
        help="write a model's network as ONNX, to run without PyTorch",
        description="Write the network of a model file (sklearn-sed train) as "
        "ONNX: frame and clip probabilities as outputs, a dynamic batch, and "
        "the log-mel settings, classes and decoding in the file's metadata, "
        "so that sklearn_sed.deploy.OnnxDetector detects the same events with "
        "onnxruntime alone. The file is checked against torch before it is "
        "written.",
    )
    export.add_argument("model", help="model file written by train or sklearn_sed.save")
    export.add_argument("output", help="ONNX file to write")
    export.add_argument(
        "--opset", type=int, default=17, help="ONNX operator set (default: 17)"
    )
    export.add_argument("--allow-pickle", action="store_true", help=PICKLE_HELP)
    export.set_defaults(func=_cmd_export)
