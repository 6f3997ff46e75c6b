"""sklearn-sed: sound event detection as scikit-learn estimators.

The NEC DCASE2019 Task 4 system (class-frame pseudo labels on a ResNet) as a
:class:`PseudoLabelSED` estimator, log-mel extraction as a
:class:`LogMelExtractor` transformer, pretrained frame embeddings (PANNs)
as a :class:`PretrainedEmbedding` transformer, and sed_eval metrics as
scorers.

The names load on first use (PEP 562): the modules that need no PyTorch
(reading audio, decoding, the ONNX detector of :mod:`sklearn_sed.deploy`)
import and run where PyTorch is not installed.
"""

from sklearn_sed._lazy import lazy_names
from sklearn_sed._version import __version__

#: Where each public name lives (imported on first access).
_HOMES = {
    "Augment": "training.augment",
    "Decoder": "decoding.decode",
    "EventEncoder": "labels",
    "FusedFeatures": "embeddings.fusion",
    "LogMelExtractor": "audio.features",
    "MeanTeacher": "training.callbacks",
    "Pipeline": "pipeline",
    "PretrainedEmbedding": "embeddings.transformer",
    "PseudoLabelSED": "estimator",
    "PseudoLabelSchedule": "training.pseudo_labels",
    "ResNetSED": "networks",
    "SEDNet": "training.net",
    "WarmupCosine": "training.callbacks",
    "event_based_f1": "metrics.scoring",
    "event_f1_scorer": "metrics.scoring",
    "load": "io",
    "load_audio": "audio.reading",
    "log_mel_spectrogram": "audio.features",
    "make_detector": "recipes",
    "make_pipeline": "pipeline",
    "make_sed_net": "training.net",
    "make_sed_scorer": "metrics.scoring",
    "save": "io",
    "segment_based_f1": "metrics.scoring",
    "segment_f1_scorer": "metrics.scoring",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, submodules=True)


__all__ = [
    "Augment",
    "Decoder",
    "EventEncoder",
    "FusedFeatures",
    "LogMelExtractor",
    "MeanTeacher",
    "Pipeline",
    "PretrainedEmbedding",
    "PseudoLabelSED",
    "PseudoLabelSchedule",
    "ResNetSED",
    "SEDNet",
    "WarmupCosine",
    "__version__",
    "event_based_f1",
    "event_f1_scorer",
    "load_audio",
    "load",
    "log_mel_spectrogram",
    "make_detector",
    "make_pipeline",
    "make_sed_net",
    "make_sed_scorer",
    "save",
    "segment_based_f1",
    "segment_f1_scorer",
]
