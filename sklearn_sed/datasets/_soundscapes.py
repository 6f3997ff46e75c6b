"""Soundscape synthesis the DESED way: isolated events mixed over backgrounds.

DESED builds its strongly labelled training set with scaper: foreground events
are placed at random times over a background at a random event-to-background
ratio, and the labels are exact by construction. scaper itself needs a folder
layout, sox-based augmentation and jams files; for the subset we need (choose,
cut, scale, add) a small numpy module is simpler to install and to test, and
reads the manifests of real collections directly.
"""

import functools
import os
import warnings

import numpy as np
import soundfile as sf
from sklearn.utils import check_random_state

from sklearn_sed.audio.features import load_audio
from sklearn_sed.labels import merge_overlapping_events

__all__ = ["make_soundscapes"]

_AUDIO = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def _as_sources(spec, *, labelled, name):
    """Normalise a folder or a list into (path, label, onset, offset) rows."""
    if spec is None:
        return []
    if isinstance(spec, (str, os.PathLike)):
        root = os.fspath(spec)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{name} folder {root!r} does not exist.")
        rows = []
        for dirpath, _, files in sorted(os.walk(root)):
            label = os.path.basename(dirpath) if labelled else None
            rows += [
                (os.path.join(dirpath, f), label, None, None)
                for f in sorted(files)
                if f.lower().endswith(_AUDIO)
            ]
        if labelled:
            rows = [r for r in rows if os.path.dirname(r[0]) != root]
        if not rows:
            raise ValueError(
                f"{name} folder {root!r} holds no audio file"
                + (" in class sub-folders." if labelled else ".")
            )
        return rows
    rows = []
    for i, item in enumerate(spec):
        if isinstance(item, (str, os.PathLike)):
            item = (item,)
        item = tuple(item) + (None,) * (4 - len(item))
        path, label, onset, offset = item[:4]
        if labelled and not label:
            raise ValueError(f"{name}[{i}] needs a class label. Got {item!r}.")
        rows.append(
            (
                os.fspath(path),
                label if labelled else None,
                None if onset in (None, "") else float(onset),
                None if offset in (None, "") else float(offset),
            )
        )
    if not rows:
        raise ValueError(f"{name} must list at least one file.")
    return rows


def _rms(y):
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)) + 1e-12))


def make_soundscapes(
    foreground,
    background=None,
    *,
    n_clips=10,
    duration=10.0,
    sr=44100,
    events_per_clip=(1, 3),
    snr_db=(6.0, 30.0),
    max_event_sec=None,
    min_event_sec=None,
    short_events="keep",
    distractors=None,
    distractors_per_clip=(0, 1),
    noise_db=-60.0,
    output_dir=None,
    random_state=None,
):
    """Mix isolated events over backgrounds into strongly labelled soundscapes.

    Parameters
    ----------
    foreground : str or sequence
        A folder with one sub-folder of audio files per class, or a sequence
        of ``(path, label)`` or ``(path, label, active_onset_s,
        active_offset_s)``; the active region, when given, is cut out first.
    background : str or sequence of str, default=None
        Background recordings (a folder or paths), tiled to ``duration``;
        None gives a faint white-noise floor at ``noise_db`` dBFS.
    n_clips : int, default=10
        Number of soundscapes.
    duration : float, default=10.0
        Soundscape length in seconds.
    sr : int, default=44100
        Sample rate in Hz (files are resampled and down-mixed).
    events_per_clip : (int, int), default=(1, 3)
        Inclusive range of labelled events per soundscape.
    snr_db : (float, float), default=(6.0, 30.0)
        Range of event-to-background RMS ratios in dB (DESED's).
    max_event_sec : float, default=None
        Longer events are cut to a random excerpt of this length (None: cut
        only to ``duration``).
    min_event_sec : float or dict of str to float, default=None
        With ``short_events="repeat"``, shorter events are repeated up to
        this length (one value, or one per class label).
    short_events : {"keep", "repeat"}, default="keep"
        What to do with events shorter than ``min_event_sec``.
    distractors : str or sequence, default=None
        Unlabelled foreground sounds (a folder or paths).
    distractors_per_clip : (int, int), default=(0, 1)
        Inclusive range of distractors per soundscape.
    noise_db : float, default=-60.0
        Level of the noise floor used without backgrounds, in dBFS.
    output_dir : str, default=None
        When given, writes ``soundscape_XXXX.wav`` files and ``soundscapes.tsv``
        (DESED strong format) there.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible soundscapes.

    Returns
    -------
    X : ndarray of shape (n_clips, n_samples), dtype float32
        The soundscapes (peak at most 0.99).
    y_strong : list of list of (onset, offset, event_label)
        Events in seconds; overlapping events of one class are merged.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> from sklearn_sed.datasets import make_soundscapes
    >>> d = tempfile.mkdtemp(); os.mkdir(f"{d}/Dog")
    >>> sf.write(f"{d}/Dog/bark.wav", np.sin(np.arange(4000) / 3), 8000)
    >>> X, y = make_soundscapes(d, n_clips=2, duration=2.0, sr=8000,
    ...                         events_per_clip=(1, 1), random_state=0)
    >>> X.shape, [len(e) for e in y]
    ((2, 16000), [1, 1])
    """
    fg = _as_sources(foreground, labelled=True, name="foreground")
    bg = _as_sources(background, labelled=False, name="background")
    distract = _as_sources(distractors, labelled=False, name="distractors")
    if short_events not in ("keep", "repeat"):
        raise ValueError(
            f"short_events must be 'keep' or 'repeat'. Got {short_events!r} instead."
        )
    lo, hi = events_per_clip
    if not 0 <= lo <= hi:
        raise ValueError(
            f"events_per_clip must be (low, high) with 0 <= low <= high. "
            f"Got {events_per_clip!r} instead."
        )
    rng = check_random_state(random_state)
    n_samples = round(duration * sr)

    @functools.lru_cache(maxsize=128)
    def read(path, onset, offset):
        y = load_audio(path, sr=sr)
        if onset is not None or offset is not None:
            a = round((onset or 0.0) * sr)
            b = len(y) if offset is None else round(offset * sr)
            if b - a > 1:
                y = y[a:b]
        return y

    def excerpt(y, label):
        limit = n_samples if max_event_sec is None else int(max_event_sec * sr)
        limit = min(limit, n_samples)
        if len(y) > limit:
            start = rng.randint(0, len(y) - limit + 1)
            y = y[start : start + limit]
        shortest = (
            min_event_sec.get(label)
            if isinstance(min_event_sec, dict)
            else min_event_sec
        )
        if short_events == "repeat" and shortest is not None:
            need = min(int(shortest * sr), n_samples)
            if len(y) < need:
                y = np.tile(y, int(np.ceil(need / len(y))))[:need]
        return y

    X = np.zeros((n_clips, n_samples), dtype=np.float32)
    y_strong = []
    for i in range(n_clips):
        if bg:
            path, _, a, b = bg[rng.randint(len(bg))]
            base = read(path, a, b)
            base = np.tile(base, int(np.ceil(n_samples / len(base))))
            start = rng.randint(0, len(base) - n_samples + 1)
            mix = base[start : start + n_samples].astype(np.float64)
        else:
            mix = rng.standard_normal(n_samples) * 10 ** (noise_db / 20)
        ref_rms = _rms(mix)
        events = []
        picks = [
            (fg[rng.randint(len(fg))], True) for _ in range(rng.randint(lo, hi + 1))
        ]
        if distract:
            d_lo, d_hi = distractors_per_clip
            picks += [
                (distract[rng.randint(len(distract))], False)
                for _ in range(rng.randint(d_lo, d_hi + 1))
            ]
        for (path, label, a, b), labelled in picks:
            y = excerpt(read(path, a, b), label)
            if _rms(y) < 1e-6:
                warnings.warn(
                    f"{path!r} is silent; it is skipped.", UserWarning, stacklevel=2
                )
                continue
            gain = ref_rms * 10 ** (rng.uniform(*snr_db) / 20) / _rms(y)
            start = rng.randint(0, n_samples - len(y) + 1)
            mix[start : start + len(y)] += gain * y
            if labelled:
                events.append(
                    (round(start / sr, 3), round((start + len(y)) / sr, 3), str(label))
                )
        peak = np.abs(mix).max()
        if peak > 0.99:
            mix *= 0.99 / peak
        X[i] = mix
        y_strong.append(merge_overlapping_events(events))
    if output_dir is not None:
        from sklearn_sed.datasets._desed import write_events_tsv

        os.makedirs(output_dir, exist_ok=True)
        table = {}
        for i, (x, events) in enumerate(zip(X, y_strong, strict=True)):
            name = f"soundscape_{i:04d}.wav"
            sf.write(os.path.join(output_dir, name), x, sr, subtype="PCM_16")
            table[name] = events
        write_events_tsv(os.path.join(output_dir, "soundscapes.tsv"), table)
    return X, y_strong
