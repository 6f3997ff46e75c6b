"""The skorch net that trains SED modules with the pseudo-label loss.

:class:`SEDNet` is a :class:`skorch.NeuralNet` whose targets are a dict of
clip labels, frame labels and label kinds (weak, strong, pseudo), and whose
criterion is :class:`~sklearn_sed.training.losses.PseudoLabelLoss`. It overrides only
``get_loss`` and the ``infer`` hook (bfloat16 autocast), never ``fit``,
``fit_loop`` or the batch loops: :func:`forward_probabilities` runs skorch's
own ``forward_iter``.
"""

import functools

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog
from skorch.history import History
from skorch.utils import to_tensor

from sklearn_sed._json import to_jsonable
from sklearn_sed.training.augment import collate_float32
from sklearn_sed.training.losses import PseudoLabelLoss

__all__ = [
    "SEDNet",
    "accelerated_net_class",
    "bare_module",
    "device_type",
    "forward_probabilities",
    "history_from_rows",
    "history_to_rows",
    "load_module_state",
    "module_state",
    "make_sed_net",
]


def history_to_rows(history):
    """Return a skorch history as JSON-ready rows (one dict per epoch).

    The per-batch records are left out; numpy values become Python numbers.
    Model files (:mod:`sklearn_sed.io`) and checkpoints
    (:mod:`sklearn_sed.training.checkpoints`) both write the history this way.

    Parameters
    ----------
    history : skorch.history.History

    Returns
    -------
    rows : list of dict
    """
    return [
        {k: to_jsonable(v) for k, v in row.items() if k != "batches"} for row in history
    ]


def history_from_rows(rows):
    """Return the skorch history that :func:`history_to_rows` wrote.

    The per-batch records were not kept; each epoch gets an empty list.

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    history : skorch.history.History
    """
    return History([{"batches": [], **row} for row in rows])


class PlainPrintLog(PrintLog):
    """skorch's epoch table, coloured only when standard output is a terminal.

    skorch colours every column with ANSI codes, which end up as noise in a
    log file or a CI log.
    """

    def format_row(self, row, key, color):
        """Format one cell, without colour when stdout is not a terminal."""
        if not _stdout_is_terminal():
            color = ""
        text = super().format_row(row, key, color)
        return text if color else text.replace("\x1b[0m", "")


def _stdout_is_terminal():
    import sys

    return bool(getattr(sys.stdout, "isatty", lambda: False)())


class SEDNet(NeuralNet):
    """skorch net for modules that return ``(frame_probs, clip_probs)``.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network, e.g. :class:`~sklearn_sed.networks.ResNetSED`.
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
    inference_dtype : {"float32", "bfloat16"}, default="float32"
        The same for the forward passes outside training (skorch's
        ``evaluation_step``: ``forward``, ``forward_iter``, ``predict``).
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
        inference_dtype="float32",
        **kwargs,
    ):
        self.train_dtype = train_dtype
        self.inference_dtype = inference_dtype
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
            ("print_log", PlainPrintLog()),
        ]

    def torch_compile(self, module, name):
        """Compile the network only (with ``compile=True``), never the criterion.

        :class:`~sklearn_sed.training.losses.PseudoLabelLoss` selects clips by their
        kind of label, so its shapes change from batch to batch and a
        compiled copy would recompile at every batch; it is cheap next to
        the network.
        """
        if name != "module":
            return module
        return super().torch_compile(module, name)

    def infer(self, x, **fit_params):
        """Forward pass, under bfloat16 autocast when asked.

        skorch calls this hook for every forward pass, in training
        (``train_step``) and outside it (``evaluation_step``, under
        ``forward_iter``); ``train_dtype`` applies to the first and
        ``inference_dtype`` to the second. The outputs are returned as
        float32, so that the loss (eqs. 1-3 take logarithms of
        probabilities) and the decoding are always in full precision.
        """
        training = self.module_.training
        x = to_tensor(x, device=self.device)
        module = self._module_for(x)
        with self.autocast(training):
            out = module(x, **fit_params)
        if self._dtype(training) == "bfloat16":
            out = tuple(o.float() for o in out)
        return out

    def autocast(self, training):
        """Return the autocast context of a forward pass.

        Parameters
        ----------
        training : bool
            A forward pass of the training (the student's, and the mean
            teacher's targets of the consistency cost): ``train_dtype``
            applies; else (validation, pseudo labels, prediction)
            ``inference_dtype``.

        Returns
        -------
        context : torch.autocast
            bfloat16 autocast on the net's device where that dtype is
            ``"bfloat16"``; a disabled one otherwise.
        """
        enabled = self._dtype(training) == "bfloat16"
        return torch.autocast(device_type(self), dtype=torch.bfloat16, enabled=enabled)

    def _dtype(self, training):
        """``train_dtype`` for a training forward pass, else ``inference_dtype``."""
        return self.train_dtype if training else self.inference_dtype

    def _module_for(self, x):
        """Return the compiled network for full training batches, else the plain one.

        A compiled fit compiles one graph: the training step at the batch
        size that was probed
        (:func:`~sklearn_sed.training.fast_path.choose_training_path`). A
        partial last batch and every forward pass outside training (validation,
        pseudo labels, prediction) run the plain network, so that no other
        shape or mode is compiled, unprobed, in this process.
        """
        module = self.module_
        plain = getattr(module, "_orig_mod", None)
        if plain is None:
            return module
        if module.training and len(x) == self.batch_size:
            return module
        return plain

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Loss of one batch.

        Parameters
        ----------
        y_pred : tuple of Tensor
            ``(frame_probs, clip_probs)`` from the module.
        y_true : dict of Tensor
            ``"weak"``, ``"frames"`` and ``"kind"`` for the batch.
        X : Tensor, default=None
            The batch input, for the consistency cost of a mean teacher.
        training : bool, default=False
            Whether in training mode: then callbacks with a
            ``consistency_loss(net, X, y_pred)`` method (the mean teacher's)
            add their term.

        Returns
        -------
        loss : Tensor
            Scalar loss of the current stage.
        """
        y_true = to_tensor(y_true, device=self.device)
        loss = self.criterion_(y_pred, y_true)
        if training:
            for _, cb in self.callbacks_:
                term = getattr(cb, "consistency_loss", None)
                if term is not None:
                    loss = loss + term(self, to_tensor(X, device=self.device), y_pred)
            # skorch reads the loss of every batch (.item()) anyway: no extra
            # synchronisation. A model of NaN weights is never trained on.
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Training diverged in epoch {len(self.history)}: the loss "
                    f"is {float(loss)}. The weights are no longer usable, so the "
                    "fit stops here. Consider a lower lr (now "
                    f"{self.lr:g}), or smaller augmentation or consistency "
                    "settings."
                )
        return loss


def device_type(net):
    """Return the net's device type ("cpu", "cuda", ...).

    Where an accelerator places the weights (``device=None``), theirs.
    """
    if net.device is not None:
        return torch.device(net.device).type
    return next(net.module_.parameters()).device.type


def bare_module(net):
    """Return ``net.module_`` without a data-parallel wrapper.

    Under an accelerator (:func:`accelerated_net_class`) the module is
    wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, whose
    state-dict keys carry a ``module.`` prefix; weight copies (best epoch,
    averages, checkpoints, model files) are taken from and loaded into the
    network itself, so that they fit a net with or without the wrapper.

    Parameters
    ----------
    net : skorch.NeuralNet
        An initialised net.

    Returns
    -------
    module : torch.nn.Module
    """
    return _unwrap(net.module_)


def drop_compiled(net):
    """Give ``net`` its plain network back after a compiled training.

    skorch's ``compile=True`` replaces ``net.module_`` with the
    ``torch.compile`` wrapper; a fitted or loaded model keeps the network
    itself instead (it pickles, and one-clip CPU inference gains nothing
    from a compiled copy that would first compile for every new input shape).

    Parameters
    ----------
    net : skorch.NeuralNet
        An initialised net.

    Returns
    -------
    net : skorch.NeuralNet
        The same net, with ``compile=False``.
    """
    net.module_ = bare_module(net)
    net.compile = False
    return net


def _unwrap(module):
    """Return ``module`` without its DDP and ``torch.compile`` wrappers.

    Their state-dict keys carry ``module.`` and ``_orig_mod.`` prefixes.
    """
    while True:
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), torch.nn.Module):
            module = module._orig_mod
        else:
            return module


def module_state(module):
    """Return a network's weights and buffers: the one form every copy takes.

    A detached, contiguous CPU copy of ``module.state_dict()``, without a
    data-parallel wrapper's ``module.`` prefix. Model files
    (:mod:`sklearn_sed.io`, as safetensors), training checkpoints
    (:mod:`sklearn_sed.training.checkpoints`), the best epoch
    (:class:`~sklearn_sed.training.callbacks.BestWeights`) and the end of a fit with
    weight averaging all take and restore the weights through this function
    and :func:`load_module_state`.

    Parameters
    ----------
    module : torch.nn.Module
        A network, possibly wrapped in ``DistributedDataParallel``.

    Returns
    -------
    state : dict of str to Tensor
    """
    return {
        k: v.detach().to("cpu", copy=True).contiguous()
        for k, v in _unwrap(module).state_dict().items()
    }


def load_module_state(module, state):
    """Load weights taken by :func:`module_state` into ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        A network of the same architecture, possibly wrapped in
        ``DistributedDataParallel``; the tensors go to its device.
    state : dict of str to Tensor
        From :func:`module_state` (or a model file's safetensors).

    Returns
    -------
    module : torch.nn.Module
    """
    module = _unwrap(module)
    module.load_state_dict(state)
    return module


@functools.cache
def accelerated_net_class():
    """Return :class:`SEDNet` with skorch's Hugging Face Accelerate mixin.

    ``skorch.hf.AccelerateMixin`` hands the module, the optimizer and the
    data loaders to an ``accelerate.Accelerator``: under ``accelerate
    launch`` or ``torchrun`` each process trains on its share of every
    batch, the gradients are averaged (DistributedDataParallel), and the
    forward passes outside training (``forward_iter``: pseudo labels,
    validation scores, predictions) are gathered, so that every process
    sees every clip. Needs the ``accelerate`` extra.

    Returns
    -------
    cls : type
        A subclass of ``AccelerateMixin`` and :class:`SEDNet`.
    """
    from skorch.hf import AccelerateMixin  # loaded only when asked for

    class AcceleratedSEDNet(AccelerateMixin, SEDNet):
        """:class:`SEDNet` trained through ``accelerate`` (data-parallel)."""

        def _initialize_accelerator(self):
            # The loss has no trainable parameter, and DDP refuses to wrap
            # such a module: it is only moved to the accelerator's device.
            criteria, self._criteria = self._criteria, []
            try:
                super()._initialize_accelerator()
            finally:
                self._criteria = criteria
            for name in criteria:
                criterion = getattr(self, name + "_")
                if isinstance(criterion, torch.nn.Module):
                    criterion.to(self.accelerator.device)
            return self

    return AcceleratedSEDNet


def make_sed_net(module, *, class_weight, n_weak, n_strong, accelerator=None, **kwargs):
    """Build a :class:`SEDNet` with its criterion set for a training set.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network.
    class_weight : ndarray of shape (n_classes,)
        ``w_c`` of eq. 1.
    n_weak, n_strong : int
        ``M_w`` and ``M_s``.
    accelerator : accelerate.Accelerator or None, default=None
        Train data-parallel through it
        (:func:`~sklearn_sed.training.net.accelerated_net_class`); the
        accelerator then places the module (``device`` is ignored).
    **kwargs
        Other :class:`SEDNet` parameters (``optimizer``, ``lr``, ...).

    Returns
    -------
    net : SEDNet
        An uninitialised net.
    """
    # Prediction batches hold float16 store rows too: cast them like training.
    kwargs.setdefault("iterator_valid__collate_fn", collate_float32)
    cls = SEDNet
    if accelerator is not None:
        cls = accelerated_net_class()
        kwargs.update(accelerator=accelerator, device=None)
        kwargs.setdefault("unwrap_after_train", True)
    return cls(
        module,
        criterion__class_weight=class_weight,
        criterion__n_weak=n_weak,
        criterion__n_strong=n_strong,
        train_split=None,
        **{"iterator_train__shuffle": True, **kwargs},
    )


class _Rows:
    """The clips ``X[indices[k]]``, read one at a time by skorch's Dataset.

    Indexing clip by clip keeps the rows of a feature store on disk.
    """

    def __init__(self, X, indices):
        self.X = X
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        return np.asarray(self.X[int(self.indices[k])])


def forward_probabilities(net, X, indices, batch_size, dtype="float32", module=None):
    """Compute frame and clip probabilities of ``X[indices]``, batch by batch.

    A thin use of skorch's own loop (``forward_iter``, which calls
    ``evaluation_step`` and the net's ``infer`` hook): this function only
    picks the batch size, the precision and the weights for the call.
    ``dtype="bfloat16"`` runs the module under ``torch.autocast``; the
    probabilities are returned as float32 either way. ``module`` defaults to
    ``net.module_`` (pass the averaged weights to use them).

    Parameters
    ----------
    net : SEDNet
        An initialised net.
    X : ndarray, memory map or FeatureView of shape (n_clips, n_frames, n_mels)
        Feature maps.
    indices : array-like of int or None
        Clips to run; None runs all.
    batch_size : int
        Clips per forward pass.
    dtype : {"float32", "bfloat16"}, default="float32"
        Precision of the forward pass.
    module : torch.nn.Module, default=None
        Weights to use instead of ``net.module_`` (e.g. the averaged ones).

    Returns
    -------
    frame_probs : ndarray of shape (n, n_frames_out, n_classes), float32
    clip_probs : ndarray of shape (n, n_classes), float32
    """
    indices = np.arange(len(X)) if indices is None else np.asarray(indices)
    saved = {
        "batch_size": net.batch_size,
        "inference_dtype": getattr(net, "inference_dtype", "float32"),
        "module_": net.module_,
    }
    was_training = (net.module_.training, net.criterion_.training)
    frames, clips = [], []
    try:
        net.batch_size = batch_size
        net.inference_dtype = dtype
        if module is not None:
            net.module_ = module
            module_was_training = module.training
        # A DataLoader draws a seed from torch's global generator: fork it,
        # so that predicting never changes the random stream of a training
        # (validation and pseudo labelling run between its epochs).
        with torch.random.fork_rng(devices=[]):
            for f, c in net.forward_iter(_Rows(X, indices), training=False):
                frames.append(f.numpy())
                clips.append(c.numpy())
    finally:
        if module is not None:
            module.train(module_was_training)
        for name, value in saved.items():
            setattr(net, name, value)
        net.module_.train(was_training[0])
        net.criterion_.train(was_training[1])
    n_classes = len(net.criterion_.class_weight)
    if not frames:
        return np.zeros((0, 0, n_classes), np.float32), np.zeros(
            (0, n_classes), np.float32
        )
    return np.concatenate(frames), np.concatenate(clips)
