"""The contract of a sound event detection network, written down once.

A network that :class:`~sklearn_sed.PseudoLabelSED` can train is any
:class:`torch.nn.Module` whose ``forward`` takes a float32 batch of feature
maps ``(batch, n_frames, n_mels)`` and returns ``(frame_probs, clip_probs)``,
probabilities in [0, 1] of shapes ``(batch, n_frames_out, n_classes)`` and
``(batch, n_classes)``; ``n_frames_out`` may be smaller than ``n_frames``
(pooling in time). Its constructor takes ``n_classes`` (the estimator builds
it as ``module(n_classes=...)``). :class:`SEDNetwork` states this as a
protocol for type checkers and readers; :func:`check_module_output` checks
it at run time, and ``PseudoLabelSED.fit`` calls it before training.
"""

from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["SEDNetwork", "check_module_output"]


@runtime_checkable
class SEDNetwork(Protocol):
    """What a SED network is: ``module(X) -> (frame_probs, clip_probs)``.

    :class:`~sklearn_sed.networks.ResNetSED`, :class:`~sklearn_sed.networks.CRNN`
    and a user's module keep it (``tests/test_resnet.py``).
    """

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return frame and clip probabilities of a batch of feature maps."""
        ...


def check_module_output(module, X, n_classes):
    """Check that a network keeps the contract of a SED module.

    The contract, the one every network of the library keeps
    (:class:`~sklearn_sed.networks.ResNetSED`, :class:`~sklearn_sed.networks.CRNN`)
    and a user's module must keep: ``module(X)`` takes a float32 batch of
    feature maps of shape ``(batch, n_frames, n_mels)`` and returns a pair
    ``(frame_probs, clip_probs)`` of probabilities in [0, 1], of shapes
    ``(batch, n_frames_out, n_classes)`` and ``(batch, n_classes)``;
    ``n_frames_out`` may be smaller than ``n_frames`` (pooling in time).
    ``PseudoLabelSED.fit`` calls this check before training, on one clip.

    Parameters
    ----------
    module : torch.nn.Module
        The network (its mode is restored afterwards).
    X : ndarray of shape (n, n_frames, n_mels)
        One or more feature maps to probe with.
    n_classes : int
        Number of classes the module must output.

    Returns
    -------
    n_frames_out : int
        Output frames per clip.

    Raises
    ------
    TypeError
        If the module does not return a pair.
    ValueError
        If a shape is not as above, or the outputs are not probabilities.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.as_tensor(np.asarray(X, dtype=np.float32)))
    finally:
        module.train(was_training)
    name = type(module).__name__
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(
            f"module {name} must return (frame_probs, clip_probs). Got "
            f"{type(out).__name__} instead."
        )
    frame_probs, clip_probs = out
    batch = len(X)
    if frame_probs.ndim != 3 or frame_probs.shape[::2] != (batch, n_classes):
        raise ValueError(
            f"module {name} returned frame_probs of shape "
            f"{tuple(frame_probs.shape)}; expected ({batch}, n_frames_out, "
            f"{n_classes})."
        )
    if tuple(clip_probs.shape) != (batch, n_classes):
        raise ValueError(
            f"module {name} returned clip_probs of shape {tuple(clip_probs.shape)};"
            f" expected ({batch}, {n_classes})."
        )
    for what, t in (("frame_probs", frame_probs), ("clip_probs", clip_probs)):
        if t.numel() and not (0.0 <= float(t.min()) and float(t.max()) <= 1.0):
            raise ValueError(
                f"module {name} returned {what} outside [0, 1] (from "
                f"{float(t.min()):.3g} to {float(t.max()):.3g}): the losses take "
                "probabilities. End the module with a sigmoid."
            )
    return int(frame_probs.shape[1])
