"""sklearn-sed: sound event detection as scikit-learn estimators.

The NEC DCASE2019 Task 4 system (class-frame pseudo labels on a ResNet) as a
:class:`PseudoLabelSED` estimator, log-mel extraction as a
:class:`LogMelExtractor` transformer, and sed_eval metrics as scorers.
"""

from sklearn_sed._version import __version__
from sklearn_sed.audio.features import LogMelExtractor, load_audio, log_mel_spectrogram
from sklearn_sed.decoding.decode import Decoder
from sklearn_sed.estimator import PseudoLabelSED
from sklearn_sed.io import load, save
from sklearn_sed.labels import EventEncoder
from sklearn_sed.metrics.scoring import (
    event_based_f1,
    event_f1_scorer,
    make_sed_scorer,
    segment_based_f1,
    segment_f1_scorer,
)
from sklearn_sed.networks import ResNetSED
from sklearn_sed.pipeline import Pipeline, make_pipeline
from sklearn_sed.recipes import make_detector
from sklearn_sed.training.augment import Augment
from sklearn_sed.training.callbacks import MeanTeacher, WarmupCosine
from sklearn_sed.training.net import SEDNet, make_sed_net
from sklearn_sed.training.pseudo_labels import PseudoLabelSchedule

__all__ = [
    "Augment",
    "Decoder",
    "EventEncoder",
    "LogMelExtractor",
    "MeanTeacher",
    "Pipeline",
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
