"""Networks by name: what ``make_detector(network=...)`` and the command line build.

A name stands for a class of this package and the sizes it is built with,
so that a recipe, a ``--network`` flag and a model file all say the same
thing: ``"resnet"`` is the NEC report's ResNet (:class:`ResNetSED`), whose
width and depth are the estimator's ``n_filters`` and ``n_blocks``;
``"crnn"`` is the DCASE2019 Task 4 baseline (:class:`CRNN`) at the
baseline's size, 32 filters and 64 GRU units per direction;
``"embedding_crnn"`` is that CRNN with pretrained frame embeddings fused
before its GRU (:class:`EmbeddingCRNN`, the DCASE baselines since 2023).
"""

import functools
import inspect

import torch

from sklearn_sed.networks.crnn import CRNN
from sklearn_sed.networks.embedding_crnn import EmbeddingCRNN
from sklearn_sed.networks.resnet import ResNetSED

__all__ = ["NETWORKS", "NETWORK_DEFAULTS", "network_factory", "network_name"]

#: The networks that can be chosen by name.
NETWORKS = {"resnet": ResNetSED, "crnn": CRNN, "embedding_crnn": EmbeddingCRNN}

#: The fields each named network is built with unless given.
NETWORK_DEFAULTS = {
    "resnet": {},
    # The DCASE2019 baseline's CRNN (the teacher of "cpu_teacher" too).
    "crnn": {"n_filters": 32, "hidden_size": 64},
    "embedding_crnn": {"n_filters": 32, "hidden_size": 64},
}


#: Size fields and their largest value (the ResNet's width has the same cap).
_SIZES = {"n_filters": 1024, "hidden_size": 1024, "n_mels": 1024, "embed_dim": 65536}


def _check_name(name):
    key = str(name).lower() if isinstance(name, str) else name
    aliases = {cls.__name__.lower(): key for key, cls in NETWORKS.items()}
    key = aliases.get(key, key)
    if key not in NETWORKS:
        raise ValueError(
            f"network must be one of {sorted(NETWORKS)}. Got {name!r} instead."
        )
    return key


def network_factory(name, **fields):
    """Return the ``module`` parameter that builds the network ``name``.

    Parameters
    ----------
    name : {"resnet", "crnn", "embedding_crnn"}
        A network of :data:`~sklearn_sed.networks.registry.NETWORKS`
        (class names, any case, are accepted too: ``"CRNN"``,
        ``"ResNetSED"``).
    **fields
        Keyword arguments of the network's class besides ``n_classes``
        (for ``"crnn"``: ``n_filters``, ``n_mels``, ``hidden_size``,
        ``pooling``; for ``"embedding_crnn"`` also ``embed_dim``), over
        :data:`~sklearn_sed.networks.registry.NETWORK_DEFAULTS`. The ResNet
        takes none: its width and depth are the estimator's ``n_filters``
        and ``n_blocks``.

    Returns
    -------
    module : functools.partial or None
        None for ``"resnet"`` (the estimator's default network), else a
        ``functools.partial`` of the class, which model files store by
        name (:func:`sklearn_sed.save`).

    Raises
    ------
    ValueError
        For an unknown name or field, or a value the class refuses (the
        network is built once on torch's ``meta`` device to check, which
        allocates nothing).

    Examples
    --------
    >>> from sklearn_sed.networks.registry import network_factory
    >>> network_factory("resnet") is None
    True
    >>> crnn = network_factory("crnn", n_filters=16)
    >>> crnn.func.__name__, crnn.keywords
    ('CRNN', {'n_filters': 16, 'hidden_size': 64})
    """
    key = _check_name(name)
    cls = NETWORKS[key]
    if key == "resnet":
        if fields:
            raise ValueError(
                f"the ResNet takes no fields here (got {sorted(fields)}): its width "
                "and depth are the estimator's n_filters and n_blocks, e.g. "
                "make_detector(n_filters=32, n_blocks=2) or --set n_filters=32."
            )
        return None
    accepted = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    ]
    unknown = sorted(set(fields) - set(accepted))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field {unknown[0]!r}; its fields are {accepted}."
        )
    kwargs = {**NETWORK_DEFAULTS[key], **fields}
    for field, value in kwargs.items():
        # The embedding CRNN may have no log-mel branch (n_mels=0).
        low = 0 if (cls is EmbeddingCRNN and field == "n_mels") else 1
        if field in _SIZES and not (
            isinstance(value, int)
            and not isinstance(value, bool)
            and low <= value <= _SIZES[field]
        ):
            raise ValueError(
                f"{cls.__name__}'s {field} must be an int in [{low}, {_SIZES[field]}]. "
                f"Got {value!r} instead."
            )
    try:
        with torch.device("meta"):  # shapes only: a check that allocates nothing
            cls(n_classes=1, **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{cls.__name__}({_kwargs_text(kwargs)}): {exc}") from None
    return functools.partial(cls, **kwargs)


def network_name(module):
    """Return the name of the named network that ``module`` builds, or None.

    Parameters
    ----------
    module : None, class, functools.partial or torch.nn.Module
        An estimator's ``module`` parameter.

    Returns
    -------
    name : str or None
        ``"resnet"`` for None (the default network), the name of a named
        network's class, else None (a user's own network).
    """
    if module is None:
        return "resnet"
    cls = module.func if isinstance(module, functools.partial) else module
    if not isinstance(cls, type):
        cls = type(cls)
    for key, known in NETWORKS.items():
        if cls is known:
            return key
    return None


def _kwargs_text(kwargs):
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
