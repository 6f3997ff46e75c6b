"""Pretrained checkpoints read without running code, and checked against their model.

Published checkpoints are pickles (``torch.save``), and unpickling runs
whatever the file names. :func:`read_checkpoint` loads with
``torch.load(weights_only=True)``, PyTorch's restricted unpickler, and
allows the fewest extra types the official files need (numpy scalars and
dtypes, in which some record their ``iteration``); any other type a file
names, ``os.system`` for one, is refused with its name before anything is
built from it. :func:`check_state_dict` then compares the file's tensors
with the named model's, key by key and shape by shape, and names the first
difference.
"""

import hashlib
import os
import pickle
import re
import zipfile

import numpy as np
import torch

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "CheckpointError",
    "check_state_dict",
    "file_sha256",
    "read_checkpoint",
]

#: Largest checkpoint read, in bytes (BEATs and Cnn14 are 0.3-0.4 GB).
MAX_CHECKPOINT_BYTES = 4 * 2**30


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, unsafe or of another model."""


def _numpy_globals():
    """Return the numpy types a weights file may hold: scalars and dtypes."""
    allowed = [np.dtype]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            allowed.append(__import__(module, fromlist=["scalar"]).scalar)
        except (ImportError, AttributeError):  # pragma: no cover - numpy 1 or 2
            pass
    for name in ("Int64DType", "Int32DType", "Float64DType", "Float32DType"):
        dtype_class = getattr(getattr(np, "dtypes", None), name, None)
        if dtype_class is not None:
            allowed.append(dtype_class)
    return allowed


def file_sha256(path):
    """Return the SHA-256 of a file, in hex.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    digest : str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path):
    """Load a checkpoint's tensors and plain values, never its code.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``torch.save`` (zip or legacy format).

    Returns
    -------
    obj : dict
        What the file holds (for PANNs ``{"iteration", "model"}``, for
        BEATs ``{"cfg", "model"}``), on the CPU.

    Raises
    ------
    CheckpointError
        If the file is missing, empty, larger than
        :data:`~sklearn_sed.embeddings.checkpoints.MAX_CHECKPOINT_BYTES`,
        truncated or not a torch file, names
        a Python type beyond tensors, containers and numpy scalars (it is
        refused with the type's name), or does not hold a dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(
            f"checkpoint {path!r} does not exist (or is not a file). Give the "
            "path of the downloaded .pth/.pt file (docs/embeddings.md says where "
            "to get each)."
        )
    size = os.path.getsize(path)
    if not 0 < size <= MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"checkpoint {path!r} is {size} bytes; a checkpoint is 1 to "
            f"{MAX_CHECKPOINT_BYTES} bytes. Download it again."
        )
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        names = [found.group(1)] if found else _named_objects(path)
        what = (
            f"names the Python object {names[0]}, which a weights file never needs"
            if names
            else "uses pickle instructions that a torch weights file does not"
        )
        raise CheckpointError(
            f"checkpoint {path!r} {what}; it is refused unread, since unpickling "
            "it could run code. Use the official checkpoint file."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path!r} is not a readable torch file ({first}); it may "
            "be truncated or corrupted. Download it again."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {path!r} holds a {type(obj).__name__}; a checkpoint is a "
            "dict of weights (or one with a 'model' entry)."
        )
    return obj


def _named_objects(path):
    """List the importable names a pickle refers to, without running it.

    Read with :mod:`pickletools` (which only parses), from a legacy file or
    the ``data.pkl`` of a zip checkpoint; names of torch's own rebuilding
    functions and of the allowed numpy types are left out.
    """
    import io
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                member = next(n for n in zf.namelist() if n.endswith("data.pkl"))
                data = zf.read(member)
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (OSError, StopIteration, zipfile.BadZipFile):
        return []
    names, strings = [], []
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    names.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # hostile bytes: parse what can be parsed
        pass
    safe = ("torch.", "collections.OrderedDict", "numpy.", "_codecs.encode")
    return [n for n in names if not n.startswith(safe)]


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}


def check_state_dict(state, expected, *, path, model, others=None):
    """Refuse a state dict whose keys or shapes differ from the model's.

    Parameters
    ----------
    state : dict of str to Tensor
        The checkpoint's weights.
    expected : torch.nn.Module
        The named model, built (on ``meta``, say) with its front end.
    path : str
        The checkpoint, for the message.
    model : str
        The model's name, for the message.
    others : dict of str to callable, default=None
        Other known models, each built by its callable only when the
        checkpoint is refused: the message names the one it fits.

    Raises
    ------
    CheckpointError
        Naming the first missing key, unexpected key or shape that differs.
    """
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise CheckpointError(
            f"checkpoint {path!r} does not hold a state dict of tensors under "
            f"'model'; it is not a {model} checkpoint."
        )
    mine, theirs = _shapes(expected.state_dict()), _shapes(state)
    problem = None
    for key, shape in mine.items():
        if key not in theirs:
            problem = f"it has no {key!r}"
        elif theirs[key] != shape:
            problem = f"its {key!r} is {list(theirs[key])}, not {list(shape)}"
        if problem:
            break
    if problem is None:
        extra = sorted(set(theirs) - set(mine))
        if extra:
            problem = f"it has {extra[0]!r}, which {model} has not"
    if problem is None:
        return
    fits = [
        name
        for name, build in (others or {}).items()
        if _shapes(build().state_dict()) == theirs
    ]
    hint = f" It fits {fits[0]!r}: consider model={fits[0]!r}." if fits else ""
    raise CheckpointError(
        f"checkpoint {path!r} is not a {model} checkpoint: {problem}.{hint}"
    )
