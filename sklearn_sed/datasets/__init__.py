"""Datasets: an embedded synthetic one, DESED TSV files, and soundscape synthesis."""

from sklearn_sed.datasets._synthetic import (
    DESED_CLASSES,
    make_domestic_soundscapes,
    make_sound_events,
)

__all__ = ["DESED_CLASSES", "make_domestic_soundscapes", "make_sound_events"]
