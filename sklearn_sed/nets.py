"""The skorch net that trains SED modules with the pseudo-label loss.

:class:`SEDNet` is a :class:`skorch.NeuralNet` whose targets are a dict of
clip labels, frame labels and label kinds (weak, strong, pseudo), and whose
criterion is :class:`~sklearn_sed.losses.PseudoLabelLoss`. It overrides only
``get_loss``, never ``fit`` or ``fit_loop``.
"""

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog
from skorch.utils import to_tensor

from sklearn_sed.losses import PseudoLabelLoss

__all__ = ["SEDNet", "forward_probabilities", "make_sed_net"]


class SEDNet(NeuralNet):
    """skorch net for modules that return ``(frame_probs, clip_probs)``.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network, e.g. :class:`~sklearn_sed.resnet.ResNetSED`.
    criterion : torch.nn.Module class, default=PseudoLabelLoss
        Loss taking ``(y_pred, y_true_dict)``.
    predict_nonlinearity : callable or None, default=None
        None on purpose: the module already outputs probabilities, and
        skorch's ``"auto"`` would turn a BCE output into two-column binary
        probabilities, wrong for multi-label frame outputs.
    train_dtype : {"float32", "bfloat16"}, default="float32"
        "bfloat16" runs the module's forward pass in training under
        ``torch.autocast`` (mixed precision: weights, optimizer and loss
        stay float32). About 2x the clips/s on CPUs with AVX-512 BF16 or
        AMX, and on recent GPUs.
    **kwargs
        Every other :class:`skorch.NeuralNet` parameter.

    See Also
    --------
    make_sed_net : Builds one with the estimator's defaults.
    """

    def __init__(
        self,
        module,
        *args,
        criterion=PseudoLabelLoss,
        predict_nonlinearity=None,
        train_dtype="float32",
        **kwargs,
    ):
        self.train_dtype = train_dtype
        super().__init__(
            module,
            *args,
            criterion=criterion,
            predict_nonlinearity=predict_nonlinearity,
            **kwargs,
        )

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            (
                "train_loss",
                PassthroughScoring(name="train_loss", on_train=True),
            ),
            ("print_log", PrintLog()),
        ]

    def infer(self, x, **fit_params):
        """Forward pass; under bfloat16 autocast in training when asked.

        The outputs are returned as float32, so that the loss (eqs. 1-3 take
        logarithms of probabilities) is always computed in full precision.
        """
        enabled = self.train_dtype == "bfloat16" and self.module_.training
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled):
            out = super().infer(x, **fit_params)
        if enabled:
            out = tuple(o.float() for o in out)
        return out

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Loss of one batch.

        Parameters
        ----------
        y_pred : tuple of Tensor
            ``(frame_probs, clip_probs)`` from the module.
        y_true : dict of Tensor
            ``"weak"``, ``"frames"`` and ``"kind"`` for the batch.
        X : Tensor, default=None
            The batch input (unused).
        training : bool, default=False
            Whether in training mode (unused).

        Returns
        -------
        loss : Tensor
            Scalar loss of the current stage.
        """
        y_true = to_tensor(y_true, device=self.device)
        return self.criterion_(y_pred, y_true)


def make_sed_net(module, *, class_weight, n_weak, n_strong, **kwargs):
    """Build a :class:`SEDNet` with its criterion set for a training set.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network.
    class_weight : ndarray of shape (n_classes,)
        ``w_c`` of eq. 1.
    n_weak, n_strong : int
        ``M_w`` and ``M_s``.
    **kwargs
        Other :class:`SEDNet` parameters (``optimizer``, ``lr``, ...).

    Returns
    -------
    net : SEDNet
        An uninitialised net.
    """
    return SEDNet(
        module,
        criterion__class_weight=class_weight,
        criterion__n_weak=n_weak,
        criterion__n_strong=n_strong,
        train_split=None,
        iterator_train__shuffle=True,
        **kwargs,
    )


def forward_probabilities(net, X, indices, batch_size, dtype="float32", module=None):
    """Compute frame and clip probabilities of ``X[indices]``, batch by batch.

    ``dtype="bfloat16"`` runs the module under ``torch.autocast``; the
    probabilities are returned as float32 either way. ``module`` defaults to
    ``net.module_`` (pass the averaged weights to use them).
    """
    indices = np.arange(len(X)) if indices is None else indices
    frames, clips = [], []
    module = net.module_ if module is None else module
    was_training = module.training
    module.eval()
    autocast = torch.autocast(
        torch.device(net.device).type,
        dtype=torch.bfloat16,
        enabled=dtype == "bfloat16",
    )
    try:
        with torch.inference_mode(), autocast:
            for s in range(0, len(indices), batch_size):
                xb = torch.as_tensor(
                    np.asarray(X[indices[s : s + batch_size]], dtype=np.float32),
                    device=net.device,
                )
                f, c = module(xb)
                frames.append(f.float().cpu().numpy())
                clips.append(c.float().cpu().numpy())
    finally:
        module.train(was_training)
    n_classes = len(net.criterion_.class_weight)
    if not frames:
        return np.zeros((0, 0, n_classes), np.float32), np.zeros(
            (0, n_classes), np.float32
        )
    return np.concatenate(frames), np.concatenate(clips)
