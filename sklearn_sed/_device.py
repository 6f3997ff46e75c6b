"""The one check of a ``device`` parameter, for every place that takes one.

The extractor's, the detector's and the command line's ``--set device=...``.
Its own module of layer 1 (torch, below the networks) because the input
checks of layer 0 (:mod:`sklearn_sed._validation`) stay free of torch.
"""

__all__ = ["check_device"]


def check_device(device, *, name="device", trains=False):
    """Raise unless ``device`` names a torch device this machine can use.

    One check for the extractor's and the detector's ``device`` and the
    command line's ``--set device=...``.

    Parameters
    ----------
    device : str or torch.device
        The device, e.g. ``"cpu"`` or ``"cuda:0"``.
    name : str, default="device"
        Name of the input, used in the message.
    trains : bool, default=False
        Also refuse device types that cannot train or predict (``"meta"``).

    Returns
    -------
    kind : str
        The device type (``"cpu"``, ``"cuda"``, ...).

    Raises
    ------
    ValueError
        If ``device`` is not a torch device, is CUDA without a CUDA device
        that torch can use, or (with ``trains``) cannot run a network.
    """
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{name} must name a torch device such as 'cpu' or 'cuda'. Got "
            f"{device!r} instead ({exc})."
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{name}={device!r} but torch sees no CUDA device here. Use "
            f"{name}='cpu', or install a CUDA build of torch."
        )
    index = torch.device(device).index
    if kind == "cpu" and index not in (None, 0):
        raise ValueError(
            f"{name}={device!r} names CPU number {index}, but torch has one CPU "
            f"device. Use {name}='cpu'."
        )
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise ValueError(
            f"{name}={device!r} but torch sees {torch.cuda.device_count()} CUDA "
            f"device(s) here (cuda:0 to cuda:{torch.cuda.device_count() - 1}). "
            "Use an index among them."
        )
    if trains and kind not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(
            f"{name}={device!r} cannot train or predict. Use 'cpu' or 'cuda'."
        )
    return kind
