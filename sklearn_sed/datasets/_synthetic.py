"""An embedded SED dataset: synthetic domestic soundscapes, made in memory.

Ten classes named after DCASE2019 Task 4's, each a distinct synthetic sound
(beeps, harmonic buzz, chirps, clicks, band noise...) mixed over a faint noise
floor. No file is read or downloaded, so tests and the demo run anywhere.
"""

import numbers

import numpy as np
from sklearn.utils import check_random_state

from sklearn_sed.labels import merge_overlapping_events, weak_labels_of

__all__ = ["DESED_CLASSES", "make_domestic_soundscapes", "make_sound_events"]

#: The ten DCASE2019 Task 4 classes, in DESED's spelling, sorted.
DESED_CLASSES = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)

# (min, max) event length in seconds, short for impulsive classes, long for
# stationary ones, as in DESED.
_LENGTHS = {
    "Alarm_bell_ringing": (1.0, 3.0),
    "Blender": (2.0, 5.0),
    "Cat": (0.5, 1.5),
    "Dishes": (0.3, 1.0),
    "Dog": (0.4, 1.2),
    "Electric_shaver_toothbrush": (2.0, 6.0),
    "Frying": (3.0, 7.0),
    "Running_water": (2.0, 6.0),
    "Speech": (0.8, 2.5),
    "Vacuum_cleaner": (3.0, 7.0),
}


def _band_noise(n, sr, lo, hi, rng):
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.8 * hi)
    spec[(freqs < lo) | (freqs > hi)] = 0
    y = np.fft.irfft(spec, n)
    return y / (np.abs(y).max() + 1e-9)


def _harmonics(f0, t, sr, n_harm, decay=1.0, odd_only=False):
    y = np.zeros_like(t)
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f0, t.shape)) / sr
    for k in range(1, n_harm + 1):
        if odd_only and k % 2 == 0:
            continue
        if np.max(f0) * k >= 0.45 * sr:
            break
        y += np.sin(k * phase) / k**decay
    return y / (np.abs(y).max() + 1e-9)


def _event(label, n, sr, rng):
    """Waveform of one event of ``n`` samples, peak about 1."""
    t = np.arange(n) / sr
    if label == "Alarm_bell_ringing":
        gate = (np.floor(t * 8) % 2 == 0).astype(float)
        f = np.where(np.floor(t * 4) % 2 == 0, 1000.0, 1300.0)
        y = gate * _harmonics(f, t, sr, 3)
    elif label == "Blender":
        y = 0.6 * _harmonics(180 + 10 * np.sin(2 * np.pi * 0.5 * t), t, sr, 25, 0.5)
        y += 0.4 * _band_noise(n, sr, 200, 4000, rng)
    elif label == "Cat":
        f0 = 500 + 500 * np.sin(np.pi * t / t[-1]) if n > 1 else np.full(n, 500.0)
        y = _harmonics(f0, t, sr, 6) * np.hanning(n)
    elif label == "Dishes":
        y = np.zeros(n)
        for start in rng.integers(0, max(n - sr // 20, 1), size=max(1, n // (sr // 6))):
            m = min(sr // 20, n - start)
            y[start : start + m] += _band_noise(m, sr, 3000, 8000, rng) * np.exp(
                -np.arange(m) / (0.01 * sr)
            )
    elif label == "Dog":
        env = np.exp(-((t % 0.4) / 0.08))
        y = _harmonics(np.full(n, 320.0), t, sr, 8, 0.7) * env
    elif label == "Electric_shaver_toothbrush":
        y = _harmonics(np.full(n, 110.0), t, sr, 40, 0.3, odd_only=True)
    elif label == "Frying":
        y = _band_noise(n, sr, 5000, 12000, rng) * (rng.random(n) < 0.3)
    elif label == "Running_water":
        y = _band_noise(n, sr, 500, 2500, rng) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    elif label == "Speech":
        f0 = 140 + 60 * np.sin(2 * np.pi * 2.5 * t)
        syll = (np.sin(2 * np.pi * 3.5 * t) > -0.3).astype(float)
        y = _harmonics(f0, t, sr, 15, 1.2) * syll
    elif label == "Vacuum_cleaner":
        y = 0.7 * _band_noise(n, sr, 100, 900, rng)
        y += 0.3 * np.sin(2 * np.pi * min(2200.0, 0.4 * sr) * t)
    else:  # pragma: no cover - guarded by the class list
        raise ValueError(f"unknown class {label!r}")
    ramp = min(n // 2, int(0.01 * sr))  # 10 ms fades avoid clicks at the edges
    if ramp:
        fade = np.linspace(0, 1, ramp)
        y[:ramp] *= fade
        y[-ramp:] *= fade[::-1]
    return y / (np.abs(y).max() + 1e-9)


def make_domestic_soundscapes(
    n_clips=100,
    *,
    duration=10.0,
    sr=44100,
    n_classes=10,
    weak_fraction=0.5,
    max_events=3,
    snr_db=(6.0, 20.0),
    random_state=None,
    return_events=False,
):
    """Generate synthetic domestic soundscapes with strong and weak labels.

    Parameters
    ----------
    n_clips : int, default=100
        Number of clips.
    duration : float, default=10.0
        Clip length in seconds.
    sr : int, default=44100
        Sample rate in Hz.
    n_classes : int, default=10
        Use the first ``n_classes`` of :data:`DESED_CLASSES`.
    weak_fraction : float, default=0.5
        Fraction of clips that keep only their weak label (``y_strong`` None).
    max_events : int, default=3
        Events per clip are drawn from ``0 .. max_events`` (at most 10 % of
        clips are empty).
    snr_db : tuple of float, default=(6.0, 20.0)
        Range of event-to-background ratios in dB.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output. The clips and their events depend on
        it alone: ``weak_fraction`` only chooses whose strong labels are
        hidden.
    return_events : bool, default=False
        If True, also return the events of every clip, the weak-only
        clips' included, as :func:`sklearn.datasets.make_blobs` returns its
        centers: the truth against which pseudo labels are measured
        (``benchmarks.quality.PseudoLabelQuality``). Never train
        on the hidden ones.

    Returns
    -------
    X : ndarray of shape (n_clips, n_samples), dtype float32
        Waveforms, ``n_samples = round(duration * sr)``, peak below 1.
    y_weak : list of list of str
        Per clip, the sorted classes present.
    y_strong : list of (list of (onset, offset, event_label) or None)
        Per clip, the events in seconds, or None for weak-only clips.
    events : list of list of (onset, offset, event_label)
        Per clip, its events, hidden or not. Only returned if
        ``return_events`` is True.

    See Also
    --------
    make_sound_events : A tiny variant for tests.

    Examples
    --------
    >>> from sklearn_sed.datasets import make_domestic_soundscapes
    >>> X, y_weak, y_strong = make_domestic_soundscapes(
    ...     4, duration=1.0, sr=8000, random_state=0)
    >>> X.shape, len(y_weak), len(y_strong)
    ((4, 8000), 4, 4)
    """
    for name, value in (("n_clips", n_clips), ("n_classes", n_classes)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int. Got {value!r} instead.")
    if n_classes > len(DESED_CLASSES):
        raise ValueError(f"n_classes must be <= 10. Got {n_classes} instead.")
    if not 0.0 <= weak_fraction <= 1.0:
        raise ValueError(f"weak_fraction must be in [0, 1]. Got {weak_fraction!r}.")
    rng = check_random_state(random_state)
    gen = np.random.default_rng(rng.randint(2**31))
    classes = DESED_CLASSES[:n_classes]
    n_samples = round(duration * sr)
    X = np.empty((n_clips, n_samples), dtype=np.float32)
    y_weak, y_strong, all_events = [], [], []
    n_weak = round(weak_fraction * n_clips)
    weak_clips = set(gen.permutation(n_clips)[:n_weak].tolist())
    for i in range(n_clips):
        background = 0.02 * _band_noise(n_samples, sr, 50, 0.45 * sr, gen)
        mix = background.copy()
        n_events = int(gen.integers(1, max_events + 1)) if gen.random() > 0.1 else 0
        events = []
        for label in gen.choice(classes, size=n_events, replace=True):
            lo, hi = _LENGTHS[label]
            length = min(gen.uniform(lo, hi), duration)
            onset = gen.uniform(0, duration - length)
            start, n = int(onset * sr), max(int(length * sr), 2)
            n = min(n, n_samples - start)
            gain = 0.02 * 10 ** (gen.uniform(*snr_db) / 20)
            mix[start : start + n] += gain * _event(str(label), n, sr, gen)
            events.append(
                (round(start / sr, 4), round((start + n) / sr, 4), str(label))
            )
        mix /= max(1.0, np.abs(mix).max() / 0.9)
        X[i] = mix
        events = merge_overlapping_events(events)
        y_weak.append(weak_labels_of(events))
        y_strong.append(None if i in weak_clips else events)
        all_events.append(events)
    if return_events:
        return X, y_weak, y_strong, all_events
    return X, y_weak, y_strong


def make_sound_events(n_clips=8, *, random_state=None):
    """Tiny two-class dataset for tests: 1 s clips at 8 kHz.

    Parameters
    ----------
    n_clips : int, default=8
        Number of clips.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_clips, 8000), dtype float32
        Waveforms.
    y_weak : list of list of str
        Weak labels.
    y_strong : list of (list of (onset, offset, event_label) or None)
        Strong labels, None for half the clips.

    See Also
    --------
    make_domestic_soundscapes : The full ten-class dataset.
    """
    return make_domestic_soundscapes(
        n_clips,
        duration=1.0,
        sr=8000,
        n_classes=2,
        max_events=2,
        random_state=random_state,
    )
