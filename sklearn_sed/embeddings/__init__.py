"""Pretrained audio embeddings: frozen networks whose frames feed the detector.

- :class:`PretrainedEmbedding`: a checkpoint's frame embeddings, as a
  transformer (:mod:`.transformer`).
- :class:`FusedFeatures`: log-mel maps with the embeddings beside them,
  the input of late fusion (:mod:`.fusion`).
- :mod:`.checkpoints`: checkpoints read without unpickling code, checked
  against the named model; :mod:`.models`: the models by name;
  :mod:`.panns`: PANNs' Cnn14 in pure torch.
"""

from sklearn_sed._lazy import lazy_names

__all__ = ["FusedFeatures", "PretrainedEmbedding"]

_HOMES = {"FusedFeatures": "fusion", "PretrainedEmbedding": "transformer"}

__getattr__, __dir__ = lazy_names(__name__, _HOMES)
