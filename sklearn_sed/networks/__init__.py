"""The networks, and the contract every network keeps.

- :class:`ResNetSED`: the NEC report's ResNet (section 2.2).
- :class:`CRNN`: the DCASE2019 Task 4 baseline.
- :class:`EmbeddingCRNN`: the CRNN with pretrained frame embeddings fused
  before its GRU (the DCASE baselines since 2023).
- ``NETWORKS`` and :func:`network_factory`: the networks by name, as
  ``make_detector(network=...)`` and ``sklearn-sed train --network`` take
  them (:mod:`.registry`).
- :class:`SEDNetwork` and :func:`check_module_output`: the contract that
  these and a user's module keep, written down once (:mod:`.contract`).
"""

from sklearn_sed.networks.contract import SEDNetwork, check_module_output
from sklearn_sed.networks.crnn import CRNN
from sklearn_sed.networks.embedding_crnn import EmbeddingCRNN
from sklearn_sed.networks.registry import NETWORKS, network_factory
from sklearn_sed.networks.resnet import ResNetSED

__all__ = [
    "CRNN",
    "EmbeddingCRNN",
    "NETWORKS",
    "ResNetSED",
    "SEDNetwork",
    "check_module_output",
    "network_factory",
]
