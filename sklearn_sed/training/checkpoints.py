"""Training checkpoints: everything needed to continue a fit after a crash.

One file per training, ``checkpoint.pt`` in the ``checkpoint_dir`` of
:class:`~sklearn_sed.PseudoLabelSED`, rewritten atomically after every epoch
of both stages. It holds the weights, the optimizer state, the number of
epochs done (hence the stage, the pseudo-label iteration and its threshold),
the current pseudo labels, the skorch history, the pseudo-label record and the
torch random state, so that a resumed fit ends with the same predictions as
an uninterrupted one. It is read with ``torch.load(weights_only=True)``: no
code is unpickled.
"""

import hashlib
import json
import os

import numpy as np
import torch
from skorch.callbacks import Callback

from sklearn_sed._atomic import atomic_path
from sklearn_sed.labels import KIND_PSEUDO, KIND_STRONG, KIND_UNLABELED, KIND_WEAK
from sklearn_sed.training.callbacks import BestWeights, DropsOnPickle, WeightAveraging
from sklearn_sed.training.net import (
    history_from_rows,
    history_to_rows,
    load_module_state,
    module_state,
)

__all__ = [
    "CHECKPOINT_NAME",
    "TrainingCheckpoint",
    "load_checkpoint",
    "save_checkpoint",
    "seal_checkpoint",
    "training_seed",
]

CHECKPOINT_NAME = "checkpoint.pt"
#: The seed drawn by a training started with ``random_state=None``.
SEED_NAME = "seed.json"


def training_seed(directory):
    """Return the seed of an unseeded training that checkpoints into ``directory``.

    A fit with ``random_state=None`` draws its seed once and records it here,
    so that rerunning the same fit draws the same one and resumes from the
    checkpoint instead of refusing it as another training.

    Parameters
    ----------
    directory : str
        Checkpoint folder (created if needed).

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1)``.

    Raises
    ------
    ValueError
        If the recorded seed is not such an integer.
    """
    path = os.path.join(directory, SEED_NAME)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(
            f"{path!r} is damaged or was altered: it is not a file holding a "
            "recorded seed. Delete it to start an unseeded training over."
        )
    if os.path.isfile(path):
        try:
            with open(path) as f:
                seed = json.load(f)["seed"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path!r} does not hold a recorded seed ({exc}). Delete it to "
                "start an unseeded training over."
            ) from None
        if type(seed) is not int or not 0 <= seed < np.iinfo(np.int32).max:
            raise ValueError(
                f"{path!r} holds seed {seed!r}; expected an integer in "
                f"[0, {np.iinfo(np.int32).max}). Delete it to start over."
            )
        return seed
    seed = int(np.random.default_rng().integers(np.iinfo(np.int32).max))
    os.makedirs(directory, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump({"seed": seed}, f)
    return seed


def _history_json(history):
    return json.dumps(history_to_rows(history))


def _callback_states(net):
    """Tensors of the stateful training callbacks (averaged and best weights)."""
    states = {}
    for name, cb in net.callbacks_:
        if isinstance(cb, WeightAveraging):
            states[name] = {"averaged": cb.state_dict()}
        elif isinstance(cb, BestWeights):
            states[name] = {
                "best_score": float(cb.best_score_),
                "best_epoch": int(cb.best_epoch_),
                "best_state": cb.best_state_,
            }
    return states


def _restore_callbacks(net, states):
    callbacks = dict(net.callbacks_)
    for name, state in states.items():
        cb = callbacks.get(name)
        if isinstance(cb, WeightAveraging):
            cb.load_state_dict(net, state["averaged"])
        elif isinstance(cb, BestWeights):
            cb.best_score_ = state["best_score"]
            cb.best_epoch_ = state["best_epoch"]
            cb.best_state_ = state["best_state"]


def save_checkpoint(directory, *, fingerprint, epochs_done, net, y, pl_history):
    """Write the training state atomically.

    Parameters
    ----------
    directory : str
        Checkpoint folder (created if needed).
    fingerprint : str
        Hash of the training parameters and data; a resume checks it.
    epochs_done : int
        Epochs finished, over both stages.
    net : SEDNet
        The net being trained.
    y : dict of ndarray
        Current targets (with the current pseudo labels).
    pl_history : list of dict
        Pseudo-label record so far.
    """
    os.makedirs(directory, exist_ok=True)
    crit = net.criterion_
    state = {
        "fingerprint": fingerprint,
        "epochs_done": int(epochs_done),
        "module": module_state(net.module_),
        "optimizer": net.optimizer_.state_dict(),
        "criterion": {
            "stage": int(crit.stage),
            "n_pseudo": int(crit.n_pseudo),
            "threshold": float(getattr(crit, "threshold", float("nan"))),
        },
        "kind": torch.as_tensor(y["kind"]),
        "frames": torch.as_tensor(y["frames"]),
        # Clip labels: those of unlabelled clips are pseudo labels in stage 2.
        "weak": torch.as_tensor(y["weak"]),
        "history": _history_json(net.history),
        "pl_history": json.dumps(pl_history),
        "rng": torch.get_rng_state(),
        "callbacks": _callback_states(net),
    }
    seal_checkpoint(state)
    with atomic_path(os.path.join(directory, CHECKPOINT_NAME), suffix=".pt") as tmp:
        torch.save(state, tmp)


def seal_checkpoint(state):
    """Give a checkpoint state the integrity hash of its current content.

    For a state edited on purpose (a benchmark continuing one training as
    another); :func:`load_checkpoint` refuses any state whose content no
    longer matches its hash.

    Parameters
    ----------
    state : dict
        A checkpoint state, as ``torch.load`` returns it.

    Returns
    -------
    state : dict
        The same dict, its ``"digest"`` set.
    """
    state["digest"] = _digest(state)
    return state


def _digest(obj):
    """Hash a checkpoint's content with BLAKE2.

    Every tensor's dtype, shape and bytes and every other value's text count,
    dict keys in sorted order.
    """
    h = hashlib.blake2b(digest_size=20)

    def feed(value):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{value.dtype}{tuple(value.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            h.update(b"{")
            for key in sorted(value, key=repr):
                if key == "digest" and value is obj:
                    continue
                h.update(repr(key).encode())
                feed(value[key])
            h.update(b"}")
        elif isinstance(value, (list, tuple)):
            h.update(b"[")
            for item in value:
                feed(item)
            h.update(b"]")
        else:
            h.update(repr(value).encode())

    feed(obj)
    return h.hexdigest()


#: The fields of a checkpoint, each checked when it is read.
_FIELDS = (
    "fingerprint",
    "epochs_done",
    "module",
    "optimizer",
    "criterion",
    "kind",
    "frames",
    "history",
    "pl_history",
    "rng",
    "digest",
)


def _check_state(state, path, y=None, total_epochs=None):
    """Refuse a checkpoint whose content was damaged or altered.

    The digest covers every byte of the tensors and every field; the shapes
    and ranges are checked too, so that a checkpoint written by another
    version (or crafted with a matching digest) cannot resume silently.
    """

    def refuse(what):
        raise ValueError(
            f"Checkpoint {path!r} is damaged or was altered: {what}. Delete it to "
            "train from scratch."
        )

    if not isinstance(state, dict):
        refuse("it is not a dict of fields")
    missing = [k for k in _FIELDS if k not in state]
    if missing:
        refuse(f"it lacks {missing}")
    if state["digest"] != _digest(state):
        refuse("its content does not match its integrity hash")
    types = {
        "module": dict,
        "optimizer": dict,
        "criterion": dict,
        "kind": torch.Tensor,
        "frames": torch.Tensor,
        "history": str,
        "pl_history": str,
        "rng": torch.Tensor,
    }
    for key, kind in types.items():
        if not isinstance(state[key], kind):
            refuse(f"{key} is a {type(state[key]).__name__}, not a {kind.__name__}")
    if not all(isinstance(t, torch.Tensor) for t in state["module"].values()):
        refuse("the weights are not all tensors")
    callbacks = state.get("callbacks", {})  # absent from older versions
    if not (
        isinstance(callbacks, dict)
        and all(
            isinstance(k, str) and isinstance(v, dict) for k, v in callbacks.items()
        )
    ):
        refuse("callbacks is not a dict of callback names to their states")
    for key in ("history", "pl_history"):
        try:
            json.loads(state[key])
        except ValueError:
            refuse(f"{key} is not JSON")
    done = state["epochs_done"]
    if (
        type(done) is not int
        or done < 0
        or (total_epochs is not None and done > total_epochs)
    ):
        refuse(f"epochs_done={done!r} is not a count of epochs of this training")
    for key, tensor in state["module"].items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            refuse(f"the weights {key!r} hold non-finite values")
    if y is not None:
        kind, frames = state["kind"], state["frames"]
        if tuple(kind.shape) != tuple(y["kind"].shape):
            refuse(
                f"kind has shape {tuple(kind.shape)}, the training {y['kind'].shape}"
            )
        if tuple(frames.shape) != tuple(y["frames"].shape):
            refuse(
                f"frames has shape {tuple(frames.shape)}, the training "
                f"{y['frames'].shape}"
            )
        kinds = {KIND_WEAK, KIND_STRONG, KIND_PSEUDO, KIND_UNLABELED}
        if not set(kind.unique().tolist()) <= kinds:
            refuse("kind holds codes that are not clip kinds")
        weak = state.get("weak")  # absent from checkpoints of older versions
        if weak is not None and (
            not isinstance(weak, torch.Tensor)
            or tuple(weak.shape) != tuple(y["weak"].shape)
            or not set(weak.unique().tolist()) <= {-1.0, 0.0, 1.0}
        ):
            refuse("weak is not the clip labels of this training")
        if not torch.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
            refuse("frames hold values outside [0, 1]")
    criterion = state["criterion"]
    if not isinstance(criterion, dict) or criterion.get("stage") not in (1, 2):
        refuse(f"criterion {criterion!r} names no stage")


def load_checkpoint(directory, *, fingerprint, y=None, total_epochs=None):
    """Read the checkpoint of ``directory``, or None when there is none.

    Parameters
    ----------
    directory : str
        Checkpoint folder.
    fingerprint : str
        Expected training fingerprint.
    y : dict of ndarray, default=None
        The training targets: the checkpoint's must have their shapes.
    total_epochs : int, default=None
        Epochs of the training: the checkpoint cannot have done more.

    Returns
    -------
    state : dict or None
        The saved state.

    Raises
    ------
    ValueError
        If the checkpoint belongs to another training (other parameters or
        data), cannot be read, or was damaged or altered (its integrity hash,
        its fields' presence, shapes and ranges).
    """
    path = os.path.join(directory, CHECKPOINT_NAME)
    if not os.path.isfile(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise ValueError(
            f"Checkpoint {path!r} cannot be read ({type(exc).__name__}: {exc}). "
            "Consider deleting it to train from scratch."
        ) from exc
    if not isinstance(state, dict) or "digest" not in state:
        raise ValueError(
            f"Checkpoint {path!r} has no integrity hash: it was written by an "
            "older sklearn-sed or altered. Delete it to train from scratch."
        )
    _check_state(state, path, y, total_epochs)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"Checkpoint {path!r} belongs to a training with other parameters or "
            "data. Consider another checkpoint_dir, or delete the checkpoint to "
            "start over."
        )
    return state


def restore(net, state, y, path="the checkpoint"):
    """Load a checkpoint into an initialised net and the targets.

    Raises
    ------
    ValueError
        If the state (checked by :func:`load_checkpoint`) still does not fit
        the net: another network or optimizer.
    """
    try:
        return _restore(net, state, y)
    except (KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"Checkpoint {path!r} does not fit this training ({type(exc).__name__}: "
            f"{exc}). Delete it to train from scratch."
        ) from exc


def _restore(net, state, y):
    load_module_state(net.module_, state["module"])
    net.optimizer_.load_state_dict(state["optimizer"])
    crit = net.criterion_
    crit.stage = state["criterion"]["stage"]
    crit.n_pseudo = state["criterion"]["n_pseudo"]
    crit.threshold = state["criterion"]["threshold"]
    y["kind"][:] = state["kind"].numpy()
    y["frames"][:] = state["frames"].numpy().astype(np.float32)
    if state.get("weak") is not None:
        y["weak"][:] = state["weak"].numpy().astype(np.float32)
    net.history = history_from_rows(json.loads(state["history"]))
    torch.set_rng_state(state["rng"])
    _restore_callbacks(net, state.get("callbacks", {}))
    return json.loads(state["pl_history"])


class TrainingCheckpoint(DropsOnPickle, Callback):
    """Write the training state after every epoch (a skorch callback).

    Each epoch's state is written by :func:`save_checkpoint`.

    It must come after every callback that records into the epoch's history
    row or keeps state (validation, best weights), so that the saved epoch
    is complete.

    Parameters
    ----------
    directory : str
        Checkpoint folder.
    fingerprint : str
        Hash of the training parameters and data.
    y : dict of ndarray
        The training targets (with the current pseudo labels).
    pseudo_labeling : PseudoLabeling
        The callback whose record is saved.
    """

    _dropped_on_pickle = ("y",)

    def __init__(self, directory, *, fingerprint, y, pseudo_labeling):
        self.directory = directory
        self.fingerprint = fingerprint
        self.y = y
        self.pseudo_labeling = pseudo_labeling

    def on_train_end(self, net, **kwargs):
        """Let go of the training targets."""
        self.y = None

    def on_epoch_end(self, net, **kwargs):
        """Save the state of the epoch that just ended (the main process only)."""
        accelerator = getattr(net, "accelerator", None)
        if accelerator is not None and not accelerator.is_main_process:
            return
        save_checkpoint(
            self.directory,
            fingerprint=self.fingerprint,
            epochs_done=len(net.history),
            net=net,
            y=self.y,
            pl_history=self.pseudo_labeling.records_,
        )
