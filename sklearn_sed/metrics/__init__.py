"""Scores of detected events: sed_eval's F1 as scikit-learn scorers, and PSDS.

The scorers are re-exported here; :mod:`sklearn_sed.metrics.psds` holds the
threshold-free PSDS (sed_scores_eval).
"""

from sklearn_sed.metrics.scoring import (
    event_based_f1,
    event_f1_scorer,
    make_sed_scorer,
    segment_based_f1,
    segment_f1_scorer,
)

__all__ = [
    "event_based_f1",
    "event_f1_scorer",
    "make_sed_scorer",
    "segment_based_f1",
    "segment_f1_scorer",
]
