"""Datasets: an embedded synthetic one, DESED TSV files, and soundscape synthesis."""

from sklearn_sed.datasets._desed import (
    MissingAudioError,
    load_desed,
    read_strong_tsv,
    read_unlabeled_tsv,
    read_weak_tsv,
    write_events_tsv,
)
from sklearn_sed.datasets._soundscapes import make_soundscapes
from sklearn_sed.datasets._synthetic import (
    DESED_CLASSES,
    make_domestic_soundscapes,
    make_sound_events,
)

__all__ = [
    "DESED_CLASSES",
    "MissingAudioError",
    "load_desed",
    "make_domestic_soundscapes",
    "make_soundscapes",
    "make_sound_events",
    "read_strong_tsv",
    "read_unlabeled_tsv",
    "read_weak_tsv",
    "write_events_tsv",
]
