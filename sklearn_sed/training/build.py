"""Building the training net from the estimator's settings.

The network (:func:`build_module`), the optimizer by name, whether
``torch.compile`` may train it here (:func:`compiles_safely`), and the skorch
net with its collate function, precision and callbacks
(:func:`make_training_net`); and the hash of the training features that keys
checkpoints (:func:`hash_rows`).
"""

import copy
import hashlib
import numbers
import warnings

import numpy as np
import torch
from skorch.callbacks import ProgressBar

from sklearn_sed.networks import ResNetSED
from sklearn_sed.training.augment import collate_float32
from sklearn_sed.training.net import make_sed_net

__all__ = [
    "MAX_BLOCKS",
    "MAX_FILTERS",
    "MIN_COMPILED_CPU_CHANNELS",
    "OPTIMIZERS",
    "build_module",
    "compiles_safely",
    "hash_rows",
    "make_training_net",
]

#: Largest ``n_filters`` and ``n_blocks`` (per stage) of the default ResNet.
MAX_FILTERS, MAX_BLOCKS = 1024, 16

#: Optimizer names that ``optimizer`` accepts, and their ``torch.optim`` classes.
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}


def hash_rows(X, chunk=256):
    """Hash every clip of ``X`` (array or memory map), ``chunk`` clips at a time.

    A checkpoint must never resume on changed data: every byte is hashed,
    in bounded memory (BLAKE2 runs at about 1 GB/s).
    """
    h = hashlib.blake2b(digest_size=16)
    for start in range(0, len(X), chunk):
        rows = np.ascontiguousarray(np.asarray(X[start : start + chunk]))
        h.update(str(rows.dtype).encode())
        h.update(rows.data)
    return h.hexdigest()


def build_module(module, n_classes, *, n_filters=64, n_blocks=2):
    """Build a fresh module: the ResNet, a copy, or ``module(n_classes=...)``.

    Parameters
    ----------
    module : torch.nn.Module class, factory, instance or None
        None is :class:`~sklearn_sed.networks.ResNetSED` of ``n_filters`` and
        ``n_blocks``; an instance is deep-copied; a class or factory is
        called with ``n_classes``.
    n_classes : int
        Output classes.
    n_filters : int, default=64
        Width of the default ResNet.
    n_blocks : int or tuple of 4 int, default=2
        Basic blocks per residual stage of the default ResNet.

    Returns
    -------
    module : torch.nn.Module
    """
    if module is None:
        if isinstance(n_blocks, tuple) and not (
            len(n_blocks) == 4
            and all(
                isinstance(b, numbers.Integral) and 1 <= b <= MAX_BLOCKS
                for b in n_blocks
            )
        ):
            raise ValueError(
                f"n_blocks must be an int or a tuple of 4 ints in [1, "
                f"{MAX_BLOCKS}] (one per stage). Got {n_blocks!r} instead."
            )
        return ResNetSED(n_classes, n_filters=n_filters, n_blocks=n_blocks)
    if isinstance(module, torch.nn.Module):
        return copy.deepcopy(module)
    return module(n_classes=n_classes)  # a class or a factory


def make_training_net(
    module,
    *,
    class_weight,
    n_weak,
    n_strong,
    optimizer,
    lr,
    batch_size,
    max_epochs,
    device,
    verbose,
    train_dtype="float32",
    compile=False,
    probed=False,
    weighting="paper",
    collate_fn=None,
    callbacks=(),
    accelerator=None,
    net_params=None,
):
    """Return the skorch net that trains ``module`` with the pseudo-label loss.

    ``optimizer`` is a ``torch.optim`` class or a name of :data:`OPTIMIZERS`
    (SGD gets a momentum of 0.9 unless ``net_params`` sets
    ``optimizer__momentum``); ``compile`` is honoured only where
    :func:`compiles_safely`, unless ``probed`` (the training probe,
    :func:`~sklearn_sed.training.fast_path.choose_training_path`, ran it
    safely); ``collate_fn`` None is
    :func:`~sklearn_sed.training.augment.collate_float32`; ``verbose >= 2``
    adds a progress bar; ``net_params`` override everything else.

    Returns
    -------
    net : SEDNet
        Not initialised.
    """
    if isinstance(optimizer, str):
        optimizer = getattr(torch.optim, OPTIMIZERS[optimizer])
    optimizer_kwargs = {"momentum": 0.9} if optimizer is torch.optim.SGD else {}
    # A net built to load weights into (not to train) is never compiled,
    # and says nothing about compiling.
    compile_ = compile and (probed or compiles_safely(module, device))
    if compile_:
        from sklearn_sed.training.fast_path import use_one_compile_thread

        use_one_compile_thread()
    extra = {
        "iterator_train__collate_fn": collate_fn or collate_float32,
        "train_dtype": train_dtype,
        "compile": compile_,
        # Static shapes: a new input shape compiles anew instead of
        # switching to dynamic shapes, where Inductor 2.13 fails on this
        # network ("cannot determine truth value of Relational").
        **({"compile__dynamic": False} if compile_ else {}),
        "criterion__weighting": weighting,
    }
    return make_sed_net(
        module,
        class_weight=class_weight,
        n_weak=n_weak,
        n_strong=n_strong,
        optimizer=optimizer,
        lr=lr,
        batch_size=batch_size,
        max_epochs=max_epochs,
        device=device,
        verbose=verbose,
        callbacks=[
            *callbacks,
            *(
                [("progress_bar", ProgressBar(batches_per_epoch="auto"))]
                if verbose >= 2
                else []
            ),
        ],
        accelerator=accelerator,
        **{f"optimizer__{k}": v for k, v in optimizer_kwargs.items()},
        **{**extra, **(net_params or {})},
    )


#: Fewest output channels of a convolution that ``torch.compile`` trains on a CPU.
MIN_COMPILED_CPU_CHANNELS = 8


def compiles_safely(module, device):
    """Whether ``compile=True`` may train ``module`` on ``device``.

    On CPUs, Inductor's fused kernels of the backward pass of a convolution
    with fewer than 8 output channels corrupted the heap (``free(): invalid
    next size``, ``double free or corruption``: the interpreter aborts) with
    torch 2.13 on an AVX2 CPU, for ``n_filters`` of 2, 4 and 6; 8, 12 and 16
    trained (``docs/recipe.md``). Such networks train eagerly, with a
    warning, instead of killing the process.
    """
    if torch.device(device or "cpu").type != "cpu":
        return True
    widths = [
        m.out_channels for m in module.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    if not widths or min(widths) >= MIN_COMPILED_CPU_CHANNELS:
        return True
    warnings.warn(
        f"compile=True trains eagerly here: the network has a convolution of "
        f"{min(widths)} output channels, and torch.compile's CPU kernels for "
        f"fewer than {MIN_COMPILED_CPU_CHANNELS} crash the interpreter (heap "
        "corruption, measured with torch 2.13). Use n_filters >= "
        f"{MIN_COMPILED_CPU_CHANNELS} to compile, or compile=False to silence "
        "this warning.",
        UserWarning,
        stacklevel=8,
    )
    return False
