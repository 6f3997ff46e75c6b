"""The training losses of the NEC report, eqs. 1-3 and 6-10, in torch.

Each equation is a function of its own so that it can be checked against a
hand computation; :class:`PseudoLabelLoss` puts them together for the skorch
net. Strong clips contribute a clip loss ``L_s^v`` and a frame loss ``L_s^m``;
weak clips a clip loss ``L_w^v``; weak clips with class-frame pseudo labels
also a frame loss ``L_p^m``.
"""

import warnings

import numpy as np
import torch
from torch import nn

# The kind codes live with the labels (numpy layer); re-exported here.
from sklearn_sed.labels import KIND_PSEUDO, KIND_STRONG, KIND_WEAK
from sklearn_sed.training.pseudo_labels import STAGE2_WEIGHTINGS

__all__ = [
    "KIND_PSEUDO",
    "KIND_STRONG",
    "KIND_WEAK",
    "PseudoLabelLoss",
    "bce",
    "paper_class_weights",
    "stage1_loss",
    "stage2_loss",
    "weighted_bce",
]


_EPS = 1e-7


def paper_class_weights(n_per_class):
    """Class weights of eq. 2: ``w_c = exp(1 / N_c) / sum_c' exp(1 / N_c')``.

    Parameters
    ----------
    n_per_class : array-like of shape (n_classes,)
        ``N_c``, the number of training clips that contain class ``c``. A class
        with no clip is counted as 1 (eq. 2 divides by zero), with a warning.

    Returns
    -------
    weights : ndarray of shape (n_classes,)
        Positive weights that sum to 1.

    Examples
    --------
    >>> from sklearn_sed.training.losses import paper_class_weights
    >>> paper_class_weights([1, 1]).tolist()
    [0.5, 0.5]
    """
    n = np.asarray(n_per_class, dtype=float)
    if np.any(n < 0):
        raise ValueError(f"n_per_class must be >= 0. Got {n.tolist()} instead.")
    if np.any(n == 0):
        warnings.warn(
            f"{int(np.sum(n == 0))} class(es) never occur in the training labels; "
            "eq. 2 counts them as occurring once. The network cannot learn them.",
            UserWarning,
            stacklevel=2,
        )
        n = np.maximum(n, 1)
    e = np.exp(1.0 / n)
    return e / e.sum()


def bce(y, p):
    """Binary cross entropy, eq. 3 with its sign corrected.

    The report prints ``E = -(y log p) + (1 - y) log(1 - p)``, which rewards a
    wrong prediction for negatives; the standard BCE
    ``E = -(y log p + (1 - y) log(1 - p))`` is what [3] and every
    implementation use.

    Parameters
    ----------
    y : Tensor
        Targets in [0, 1].
    p : Tensor
        Probabilities, same shape; clamped to ``[1e-7, 1 - 1e-7]``.

    Returns
    -------
    E : Tensor
        Element-wise loss, same shape.
    """
    p = p.clamp(_EPS, 1 - _EPS)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def weighted_bce(y, p, weights, n_all=None):
    """Weighted BCE of eq. 1: ``L = 1/N_all sum_n sum_c w_c E(y_nc, p_nc)``.

    Parameters
    ----------
    y, p : Tensor of shape (..., n_classes)
        Targets and probabilities; every leading index is a sample ``n``
        (a clip for clip losses, a clip-frame pair for frame losses). A NaN
        target is unknown and adds nothing (``N_all`` still counts its
        sample).
    weights : Tensor of shape (n_classes,)
        ``w_c``.
    n_all : float or Tensor, default=None
        ``N_all``; None counts the samples of ``y``. Data-parallel training
        passes the count over all processes divided by their number, so
        that the average of the processes' losses (and gradients) is the
        loss of the whole batch.

    Returns
    -------
    L : Tensor, scalar
        The loss; 0 when there is no sample.
    """
    if n_all is None:
        n_all = y[..., 0].numel()
    if y.numel() == 0 or n_all == 0:
        return p.sum() * 0.0  # keeps the graph and the device
    unknown = torch.isnan(y)
    if unknown.any():  # pseudo labels with negatives="absent": left out
        E = bce(torch.where(unknown, torch.zeros_like(y), y), p)
        return (E.masked_fill(unknown, 0.0) * weights).sum() / n_all
    return (bce(y, p) * weights).sum() / n_all


def stage1_loss(L_w_v, L_s_v, L_s_m, *, n_weak, n_strong):
    """Total loss of the first stage, eqs. 6-8.

    ``L = L^v + L^m_1st`` with
    ``L^v = M_w/(M_w+M_s) L_w^v + M_s/(M_w+M_s) L_s^v`` (eq. 7) and
    ``L^m_1st = (M_w+M_s)/M_s L_s^m`` (eq. 8).

    Parameters
    ----------
    L_w_v, L_s_v, L_s_m : Tensor or float
        Clip loss of weak clips, clip loss and frame loss of strong clips.
    n_weak, n_strong : int
        ``M_w`` and ``M_s``, the numbers of weak and strong training clips.

    Returns
    -------
    L : Tensor or float
        ``L^all_1st``.
    """
    total = n_weak + n_strong
    L_v = n_weak / total * L_w_v + n_strong / total * L_s_v
    L_m = total / n_strong * L_s_m if n_strong else 0.0 * L_s_m
    return L_v + L_m


def stage2_loss(
    L_w_v, L_s_v, L_s_m, L_p_m, *, n_weak, n_strong, n_pseudo, weighting="paper"
):
    """Total loss of the second stage, eqs. 9-10 (with eq. 7 for ``L^v``).

    ``L^m_2nd = (M_w+M_s) M_s/(M_s+M_p)^2 L_s^m + (M_w+M_s) M_p/(M_s+M_p)^2 L_p^m``.
    With ``M_p = 0`` it equals eq. 8.

    Eq. 10 shares one frame weight between the strong and the pseudo-labelled
    clips, so the true frame labels weigh ``M_s^2 / (M_s+M_p)^2`` of what
    they weighed in stage 1 (about a quarter when ``M_p`` is close to
    ``M_s``). ``weighting="keep_strong"`` (not in the report) keeps eq. 8's
    strong term and adds eq. 10's pseudo term on top:
    ``L^m = (M_w+M_s)/M_s L_s^m + (M_w+M_s) M_p/(M_s+M_p)^2 L_p^m``.

    Parameters
    ----------
    L_w_v, L_s_v, L_s_m, L_p_m : Tensor or float
        The four partial losses; ``L_p_m`` is the frame loss of pseudo-labelled
        clips.
    n_weak, n_strong, n_pseudo : int
        ``M_w``, ``M_s`` and ``M_p``.
    weighting : {"paper", "keep_strong"}, default="paper"
        Eq. 10 as printed, or eq. 8's strong term plus eq. 10's pseudo term.

    Returns
    -------
    L : Tensor or float
        ``L^all_2nd``.
    """
    if weighting not in STAGE2_WEIGHTINGS:
        raise ValueError(
            f"weighting must be one of {STAGE2_WEIGHTINGS}. Got {weighting!r} instead."
        )
    total = n_weak + n_strong
    L_v = n_weak / total * L_w_v + n_strong / total * L_s_v
    denom = (n_strong + n_pseudo) ** 2
    if denom == 0:
        return L_v + 0.0 * L_s_m + 0.0 * L_p_m
    strong_weight = total * n_strong / denom
    if weighting == "keep_strong" and n_strong:
        strong_weight = total / n_strong
    L_m = strong_weight * L_s_m + total * n_pseudo / denom * L_p_m
    return L_v + L_m


def _batch_counts(counts):
    """Return the ``N_all`` of each partial loss of a batch.

    In one process: None (each loss counts its own samples). Under
    data-parallel training (``torch.distributed`` initialised with several
    processes), each process holds a share of the batch, and DDP averages the
    processes' gradients; the counts are summed over the processes and
    divided by their number, so that the averaged loss equals the loss of
    the whole batch in one process (eqs. 1 and 3 divide by the batch's
    sample counts, which differ between the shares).
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return [None] * len(counts)
    world = dist.get_world_size()
    if world == 1:
        return [None] * len(counts)
    total = torch.stack(counts).to(torch.float64)
    dist.all_reduce(total)
    return list((total / world).to(torch.float32))


class PseudoLabelLoss(nn.Module):
    """Criterion of both training stages for skorch.

    Parameters
    ----------
    class_weight : array-like of shape (n_classes,)
        ``w_c`` of eq. 1.
    n_weak, n_strong : int, default=0
        ``M_w`` and ``M_s`` of the training set.
    n_pseudo : int, default=0
        ``M_p``, updated by the estimator at every pseudo-labelling iteration.
    stage : {1, 2}, default=1
        Which total loss to use, eq. 6 or eq. 9.
    threshold : float, default=nan
        ``theta_i`` of the current pseudo labels (recorded, not used by the
        loss); NaN in stage 1.
    weighting : {"paper", "keep_strong"}, default="paper"
        Frame-loss weights of stage 2 (:func:`stage2_loss`).

    Notes
    -----
    ``forward(y_pred, y_true)`` takes ``y_pred = (frame_probs, clip_probs)``
    and ``y_true`` a dict with ``"weak"`` (batch, n_classes), ``"frames"``
    (batch, n_frames, n_classes) and ``"kind"`` (batch,), one of
    :data:`KIND_WEAK`, :data:`KIND_STRONG`, :data:`KIND_PSEUDO`,
    ``KIND_UNLABELED`` (no supervised loss).
    """

    def __init__(
        self,
        class_weight,
        *,
        n_weak=0,
        n_strong=0,
        n_pseudo=0,
        stage=1,
        threshold=float("nan"),
        weighting="paper",
    ):
        super().__init__()
        self.register_buffer(
            "class_weight",
            torch.as_tensor(np.asarray(class_weight), dtype=torch.float32),
        )
        self.n_weak = n_weak
        self.n_strong = n_strong
        self.n_pseudo = n_pseudo
        self.stage = stage
        self.threshold = threshold
        self.weighting = weighting

    def partial_losses(self, y_pred, y_true):
        """Return ``L_w^v, L_s^v, L_s^m, L_p^m`` of one batch."""
        frame_probs, clip_probs = y_pred
        kind = y_true["kind"]
        weak, frames = y_true["weak"], y_true["frames"]
        w = self.class_weight.to(clip_probs.device)
        strong = kind == KIND_STRONG
        pseudo = kind == KIND_PSEUDO
        # Weak clips keep their clip loss when pseudo labelled; a clip without
        # any label has one only while it holds a pseudo clip label.
        not_strong = (kind == KIND_WEAK) | pseudo
        n_frames = frame_probs.shape[1]
        n = _batch_counts(
            [
                not_strong.sum(),
                strong.sum(),
                strong.sum() * n_frames,
                pseudo.sum() * n_frames,
            ]
        )
        return (
            weighted_bce(weak[not_strong], clip_probs[not_strong], w, n[0]),
            weighted_bce(weak[strong], clip_probs[strong], w, n[1]),
            weighted_bce(frames[strong], frame_probs[strong], w, n[2]),
            weighted_bce(frames[pseudo], frame_probs[pseudo], w, n[3]),
        )

    def forward(self, y_pred, y_true):
        """Total loss of the current stage for one batch."""
        L_w_v, L_s_v, L_s_m, L_p_m = self.partial_losses(y_pred, y_true)
        if self.stage == 1:
            return stage1_loss(
                L_w_v, L_s_v, L_s_m, n_weak=self.n_weak, n_strong=self.n_strong
            )
        return stage2_loss(
            L_w_v,
            L_s_v,
            L_s_m,
            L_p_m,
            n_weak=self.n_weak,
            n_strong=self.n_strong,
            n_pseudo=self.n_pseudo,
            weighting=self.weighting,
        )
