"""The pretrained embedding models by name: how each is built from its checkpoint.

A name stands for a network class, its front end and the layout of its
official checkpoint, so that ``PretrainedEmbedding(model=...)``, the
command line's ``--embeddings NAME:PATH`` and a model file all say the
same thing.
"""

import torch

from sklearn_sed.embeddings.checkpoints import (
    CheckpointError,
    check_state_dict,
    read_checkpoint,
)
from sklearn_sed.embeddings.panns import PANNS_MODELS, Cnn14Embedding

__all__ = ["EMBEDDING_MODELS", "build_embedding_network", "empty_network", "model_spec"]

#: The models that can be named, with their rate (Hz) and frame dimension.
EMBEDDING_MODELS = {
    name: {"sample_rate": spec["sample_rate"], "dim": Cnn14Embedding.embedding_dim}
    for name, spec in PANNS_MODELS.items()
}


def model_spec(model):
    """Return the rate and dimension of a named model, or raise naming the choices."""
    if model not in EMBEDDING_MODELS:
        raise ValueError(
            f"model must be one of {sorted(EMBEDDING_MODELS)}. Got {model!r} instead."
        )
    return EMBEDDING_MODELS[model]


def _empty(model):
    with torch.device("meta"):  # shapes only
        return Cnn14Embedding(**PANNS_MODELS[model])


def empty_network(model):
    """Return the named network with weights to be loaded (on the CPU).

    Parameters
    ----------
    model : str
        A name of :data:`EMBEDDING_MODELS`.

    Returns
    -------
    network : torch.nn.Module
    """
    model_spec(model)
    return Cnn14Embedding(**PANNS_MODELS[model])


def build_embedding_network(model, path):
    """Read a checkpoint, check it is ``model``'s, and return the network in eval mode.

    Parameters
    ----------
    model : str
        A name of :data:`EMBEDDING_MODELS`.
    path : str
        The checkpoint file (read with
        :func:`~sklearn_sed.embeddings.checkpoints.read_checkpoint`).

    Returns
    -------
    network : torch.nn.Module
        On the CPU, in eval mode, every parameter frozen.

    Raises
    ------
    CheckpointError
        If the file cannot be read safely or is not ``model``'s.
    """
    model_spec(model)
    obj = read_checkpoint(path)
    state = obj.get("model", obj)
    others = {name: _empty(name) for name in PANNS_MODELS if name != model}
    check_state_dict(state, _empty(model), path=path, model=model, others=others)
    network = empty_network(model)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # pragma: no cover - shapes were checked
        raise CheckpointError(f"checkpoint {path!r}: {exc}") from None
    network.eval()
    network.requires_grad_(False)
    return network
