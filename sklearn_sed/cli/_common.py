"""Checks and helpers that every command shares.

User errors, input and output files, model files and audio listings.
"""

import argparse
import os
import sys

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def same_file(a, b):
    a, b = os.path.realpath(a), os.path.realpath(b)
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


#: What an existing output file must look like to be replaced, by kind: the
#: first bytes of a file this command writes. Anything else is the user's.
OUTPUT_KINDS = {
    "model": (b"PK\x03\x04", "a sklearn-sed model file"),
    "events": (b"filename\tonset\toffset\tevent_label", "an events TSV"),
    "scores": (b"onset\toffset\t", "a frame-score TSV"),
    "figure": (b"\x89PNG", "a PNG figure"),
    # An ONNX model's first field: ir_version (protobuf tag 1, varint).
    "onnx": (b"\x08", "an ONNX model"),
}


def check_replaceable(path, kind, flag="--output"):
    """Refuse to replace an existing file that this command did not write.

    A file is replaced only when it starts as the command's own output of
    that kind does (an earlier run's events TSV, a model file, ...), so that
    a mistyped path never overwrites a recording, a label file or a report.
    """
    if not os.path.isfile(path):
        return
    magic, what = OUTPUT_KINDS[kind]
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


def file_identity(path):
    """``(device, inode)`` of an existing file, None for none (or no path)."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_output(path, inputs, kind=None):
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
        if item and os.path.exists(item) and same_file(path, item):
            raise CLIError(
                f"--output {path!r} is also an input ({item!r}); it would be "
                "overwritten. Choose another output file."
            )
    if kind is not None:
        check_replaceable(path, kind)


#: Largest count that a demo option takes (beyond it nothing fits in memory).
MAX_DEMO_COUNT = 100_000


def positive_int(flag):
    """Build an argparse type: an integer in [1, 100000], or a one-line error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be a whole number; got {text!r}."
            ) from None
        if not 1 <= value <= MAX_DEMO_COUNT:
            raise argparse.ArgumentTypeError(
                f"{flag} must be between 1 and {MAX_DEMO_COUNT}; got {value}."
            )
        return value

    return parse


def check_folder(flag, path, *, parent_must_exist=False):
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


def save_model(pipe, path):
    from sklearn_sed.io import save

    save(pipe, path)


def load_model(path, *, allow_pickle=False, checkpoint=None):
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
        return audio_pipeline(load(path, checkpoint=checkpoint), path)
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
    return audio_pipeline(model, path)


def load_detector(path, *, allow_pickle=False, checkpoint=None):
    """Return a model file's pipeline, or an ONNX file's ``OnnxDetector``.

    An ``.onnx`` file (``sklearn-sed export``) is read by
    :class:`sklearn_sed.deploy.OnnxDetector` (its own checks, no PyTorch);
    anything else by :func:`load_model`.
    """
    if not str(path).lower().endswith(".onnx"):
        model = load_model(path, allow_pickle=allow_pickle, checkpoint=checkpoint)
        if hasattr(model[0], "verbose"):  # one overall bar, not one per file
            model[0].set_params(verbose=0)
        return model
    from sklearn_sed.deploy.onnx_detector import OnnxDetector

    if not os.path.isfile(path):
        raise CLIError(f"model file {path!r} does not exist.")
    try:
        return OnnxDetector(path)
    except ImportError as exc:
        raise CLIError(str(exc)) from None


def audio_pipeline(model, path):
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


def walk(folder):
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


def audio_files(inputs):
    """Return ``(key, path)`` of every audio file; keys never repeat.

    The key is the path relative to the folder given (the base name for a
    file given directly), so files of one name in two sub-folders stay apart.
    """
    files, seen = [], {}
    for item in inputs:
        if os.path.isdir(item):
            for root, names in walk(item):
                for n in sorted(names):
                    if n.lower().endswith(AUDIO_EXTENSIONS):
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


def progress(items, enabled, what):
    """Yield ``items`` with one overall progress bar on stderr when enabled."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=what, unit="file", file=sys.stderr)


PICKLE_HELP = (
    "also read a joblib/pickle model file. Loading a pickle runs whatever code "
    "the file holds: use it only for files you made yourself"
)


CHECKPOINT_HELP = (
    "where the pretrained embedding's checkpoint is now, for a model trained "
    "with --embeddings whose checkpoint has moved (its SHA-256 must equal the "
    "one the model file records)"
)


def one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def sed_scores_eval():
    """Return the sed_scores_eval package (``--scores-dir``) or a one-line error."""
    from sklearn_sed.metrics.psds import sed_scores_eval

    try:
        return sed_scores_eval()
    except ImportError as exc:
        raise CLIError(f"--scores-dir: {exc}") from None
