"""The pretrained embedding models by name: how each is built from its checkpoint.

A name stands for a network class, its front end and the layout of its
official checkpoint, so that ``PretrainedEmbedding(model=...)``, the
command line's ``--embeddings NAME:PATH`` and a model file all say the
same thing.
"""

import functools
import numbers

import torch

from sklearn_sed.embeddings.beats import BEATS_CONFIG, BEATsEmbedding
from sklearn_sed.embeddings.checkpoints import (
    CheckpointError,
    check_state_dict,
    read_checkpoint,
)
from sklearn_sed.embeddings.panns import PANNS_MODELS, Cnn14Embedding

__all__ = [
    "EMBEDDING_MODELS",
    "build_embedding_network",
    "check_beats_config",
    "empty_network",
    "model_spec",
]

#: The models that can be named, with their rate (Hz) and frame dimension.
EMBEDDING_MODELS = {
    **{
        name: {"sample_rate": spec["sample_rate"], "dim": Cnn14Embedding.embedding_dim}
        for name, spec in PANNS_MODELS.items()
    },
    "beats": {
        "sample_rate": BEATsEmbedding.sample_rate,
        "dim": BEATS_CONFIG["encoder_embed_dim"],
    },
}

#: BEATs variants this module implements one way only: these cfg values.
_BEATS_FIXED = {
    "layer_norm_first": False,
    "activation_fn": "gelu",
    "relative_position_embedding": True,
    "gru_rel_pos": True,
}
#: BEATs cfg fields that size the network, and their largest value.
_BEATS_SIZES = {
    "input_patch_size": 128,
    "embed_dim": 8192,
    "encoder_layers": 96,
    "encoder_embed_dim": 8192,
    "encoder_ffn_embed_dim": 32768,
    "encoder_attention_heads": 256,
    "conv_pos": 1024,
    "conv_pos_groups": 1024,
    "num_buckets": 100_000,
    "max_distance": 1_000_000,
    "predictor_class": 100_000,
}


def model_spec(model):
    """Return the rate and dimension of a named model, or raise naming the choices."""
    if model not in EMBEDDING_MODELS:
        raise ValueError(
            f"model must be one of {sorted(EMBEDDING_MODELS)}. Got {model!r} instead."
        )
    return EMBEDDING_MODELS[model]


def check_beats_config(cfg, *, path="the checkpoint"):
    """Return the architecture fields of a BEATs ``cfg``, checked.

    Parameters
    ----------
    cfg : dict
        The checkpoint's ``cfg``.
    path : str
        For the message.

    Returns
    -------
    cfg : dict
        The fields of :data:`~sklearn_sed.embeddings.beats.BEATS_CONFIG`.

    Raises
    ------
    CheckpointError
        For a field of the wrong type or size, or a variant not implemented.
    """
    if not isinstance(cfg, dict):
        raise CheckpointError(
            f"checkpoint {path!r} has no 'cfg' dict; a BEATs checkpoint holds its "
            "configuration beside its weights."
        )
    out = {k: cfg.get(k, v) for k, v in BEATS_CONFIG.items()}
    for key, value in _BEATS_FIXED.items():
        if out[key] != value:
            raise CheckpointError(
                f"checkpoint {path!r} is a BEATs variant with {key}={out[key]!r}; "
                f"this library implements {key}={value!r} (the published "
                "BEATs_iter3 checkpoints)."
            )
    for key, top in _BEATS_SIZES.items():
        value = out[key]
        if not (
            isinstance(value, numbers.Integral)
            and not isinstance(value, bool)
            and 1 <= value <= top
        ):
            raise CheckpointError(
                f"checkpoint {path!r}: cfg[{key!r}] is {value!r}; expected an int "
                f"in [1, {top}]."
            )
    for key in ("conv_bias", "deep_norm", "finetuned_model"):
        if not isinstance(out[key], bool):
            raise CheckpointError(
                f"checkpoint {path!r}: cfg[{key!r}] is {out[key]!r}; expected a bool."
            )
    if out["encoder_embed_dim"] % out["encoder_attention_heads"]:
        raise CheckpointError(
            f"checkpoint {path!r}: encoder_embed_dim is not a multiple of "
            "encoder_attention_heads."
        )
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}


def _network(model, cfg=None):
    if model == "beats":
        return BEATsEmbedding(cfg)
    return Cnn14Embedding(**PANNS_MODELS[model])


def _empty(model, cfg=None):
    with torch.device("meta"):  # shapes only
        return _network(model, cfg)


def empty_network(model, cfg=None):
    """Return the named network with weights to be loaded (on the CPU).

    Parameters
    ----------
    model : str
        A name of :data:`~sklearn_sed.embeddings.models.EMBEDDING_MODELS`.
    cfg : dict, default=None
        BEATs' configuration
        (:func:`~sklearn_sed.embeddings.models.check_beats_config`); None for
        PANNs.

    Returns
    -------
    network : torch.nn.Module
    """
    model_spec(model)
    if model == "beats":
        cfg = check_beats_config(cfg or BEATS_CONFIG)
    return _network(model, cfg)


def build_embedding_network(model, path):
    """Read a checkpoint, check it is ``model``'s, and return the network in eval mode.

    Parameters
    ----------
    model : str
        A name of :data:`~sklearn_sed.embeddings.models.EMBEDDING_MODELS`.
    path : str
        The checkpoint file (read with
        :func:`~sklearn_sed.embeddings.checkpoints.read_checkpoint`).

    Returns
    -------
    network : torch.nn.Module
        On the CPU, in eval mode, every parameter frozen; a BEATs network
        has its checked configuration as ``network.cfg``.

    Raises
    ------
    CheckpointError
        If the file cannot be read safely or is not ``model``'s.
    """
    model_spec(model)
    obj = read_checkpoint(path)
    state = obj.get("model", obj)
    cfg = None
    if model == "beats":
        cfg = check_beats_config(obj.get("cfg"), path=path)
    # The other models, built only to name the one a refused file fits.
    others = {
        name: functools.partial(_empty, name)
        for name in EMBEDDING_MODELS
        if name != model
    }
    check_state_dict(state, _empty(model, cfg), path=path, model=model, others=others)
    network = _network(model, cfg)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # pragma: no cover - shapes were checked
        raise CheckpointError(f"checkpoint {path!r}: {exc}") from None
    network.eval()
    network.requires_grad_(False)
    return network
