"""Label-consistent data augmentation for SED batches (a skorch collate_fn).

Not in the NEC report (which trains on the features as they are); offered
because CPU-budget training on small data needs it. Every transform keeps
frame labels aligned with the features:

* time shift: the features are rolled by ``k * pooling`` input frames and the
  frame labels by ``k`` output frames (circularly, so nothing is lost);
* frequency masking (SpecAugment): a band of mel bins is set to 0 (the
  minimum of min-max scaled features); labels are unchanged;
* FilterAugment (Nam et al., ICASSP 2022, the "linear" type of the DESED
  baselines since 2022): a random filter over the mel axis, a gain drawn in
  ``[-filter_augment, filter_augment]`` dB at each of 4 to 7 random points
  of the axis and interpolated linearly between them, is added to each
  clip (in log-mel, a gain is a sum). ``db_range`` says how many dB one
  unit of the features spans: 80 for the extractor's default (``top_db=80``
  floor, min-max scaled), so 6 dB adds at most 0.075. Labels are
  unchanged: it imitates another room or microphone.

:class:`Augment` is the parameter object of :class:`~sklearn_sed.PseudoLabelSED`
(``augment=Augment(...)``); :class:`SEDAugment` is the collate function it
builds for skorch's training iterator. Mixup was measured and left out
(``docs/benchmarks.md``, levers).
"""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval
from torch.utils.data import default_collate

__all__ = ["Augment", "SEDAugment", "collate_float32"]


def collate_float32(items):
    """Collate a batch and cast the features to float32 (float16 stores).

    The features are stacked into a new array, so read-only memory maps are
    never handed to torch as they are.
    """
    # One copy: stacked straight into float32 (not stacked, then cast).
    X = np.stack([np.asarray(item[0]) for item in items], dtype=np.float32)
    y = default_collate([item[1] for item in items])
    return torch.from_numpy(X), y


class SEDAugment:
    """Collate a batch and augment it.

    Parameters
    ----------
    time_shift : float, default=0.0
        Largest shift as a fraction of the clip (0.5 = up to half a clip
        either way).
    freq_mask : int, default=0
        Largest number of consecutive mel bins masked per clip.
    pooling : int, default=8
        Input frames per output frame of the network.
    filter_augment : float, default=0.0
        Largest gain (dB) of the random filter of FilterAugment; 0 turns it
        off. The DESED baselines use 6.
    filter_bands : tuple of int, default=(3, 6)
        Smallest and largest number of bands of the filter (the gains sit on
        their ``n + 1`` edges).
    db_range : float, default=80.0
        dB spanned by one unit of the features (the extractor's ``top_db``
        when the features are min-max scaled per clip).
    n_bands : int, default=None
        The leading feature columns that are mel bands, which frequency
        masking and FilterAugment touch (the columns after them, pretrained
        embeddings in :class:`~sklearn_sed.FusedFeatures`, are left as they
        are); None means every column.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.training.augment import SEDAugment
    >>> item = (np.zeros((16, 4), np.float32),
    ...         {"frames": np.zeros((2, 1), np.float32)})
    >>> X, y = SEDAugment(time_shift=0.5, freq_mask=2, pooling=8)([item, item])
    >>> tuple(X.shape), tuple(y["frames"].shape)
    ((2, 16, 4), (2, 2, 1))
    """

    def __init__(
        self,
        time_shift=0.0,
        freq_mask=0,
        pooling=8,
        filter_augment=0.0,
        filter_bands=(3, 6),
        db_range=80.0,
        n_bands=None,
    ):
        self.time_shift = time_shift
        self.freq_mask = freq_mask
        self.pooling = pooling
        self.filter_augment = filter_augment
        self.filter_bands = filter_bands
        self.db_range = db_range
        self.n_bands = n_bands

    def __call__(self, items):
        """Collate ``[(X_i, y_i), ...]`` and augment each clip."""
        X, y = collate_float32(items)  # a new array: augmented in place
        frames = y["frames"].clone() if isinstance(y, dict) else None
        n_out = frames.shape[1] if frames is not None else X.shape[1] // self.pooling
        max_k = int(self.time_shift * n_out)
        bands = X.shape[2] if self.n_bands is None else min(self.n_bands, X.shape[2])
        for i in range(X.shape[0]):
            if max_k > 0:
                k = int(torch.randint(-max_k, max_k + 1, ()).item())
                if k:
                    X[i] = torch.roll(X[i], k * self.pooling, dims=0)
                    if frames is not None:
                        frames[i] = torch.roll(frames[i], k, dims=0)
            if self.freq_mask > 0 and bands:
                width = int(torch.randint(0, self.freq_mask + 1, ()).item())
                width = min(width, bands)  # a mask wider than the mel axis
                if width:
                    start = int(torch.randint(0, bands - width + 1, ()).item())
                    X[i, :, start : start + width] = 0.0
            if self.filter_augment > 0 and bands:
                X[i, :, :bands] += self._filter(bands)
        if frames is not None:
            y = {**y, "frames": frames}
        return X, y

    def _filter(self, n_bins):
        """One random FilterAugment filter, shape (n_bins,), in feature units.

        The edges of ``n`` bands split the mel axis (bands at least
        ``n_bins // (2 n)`` bins wide), a gain in ``[-filter_augment,
        filter_augment]`` dB is drawn at each of the ``n + 1`` edges, and the
        gains are interpolated linearly between them.
        """
        low, high = self.filter_bands
        n = int(torch.randint(low, high + 1, ()).item())
        min_bw = max(1, n_bins // (2 * n))
        slack = max(0, n_bins - 1 - n * min_bw)
        inner = torch.sort(torch.randint(0, slack + 1, (n - 1,))).values
        inner = inner + torch.arange(1, n) * min_bw
        edges = torch.cat([torch.tensor([0]), inner, torch.tensor([n_bins - 1])])
        gains = (torch.rand(n + 1) * 2.0 - 1.0) * self.filter_augment
        filt = np.interp(np.arange(n_bins), edges.numpy(), gains.numpy())
        return torch.from_numpy(filt.astype(np.float32)) / self.db_range


#: Largest ``freq_mask`` (mel bands): larger than any mel axis.
MAX_FREQ_MASK = 1024
#: Largest ``filter_augment`` gain (dB): the features' whole range (top_db).
MAX_FILTER_AUGMENT_DB = 80.0


class Augment(BaseEstimator):
    """Training augmentation (not in the report): a parameter object.

    The ``augment`` of :class:`~sklearn_sed.PseudoLabelSED`; the estimator's
    ``get_params``/``set_params`` reach its fields with the ``augment__``
    prefix. Every transform keeps frame labels aligned with the features
    (:class:`~sklearn_sed.training.augment.SEDAugment` applies them batch by batch).

    Parameters
    ----------
    time_shift : float, default=0.0
        Random circular time shift of up to this fraction of a clip, applied
        to features and frame labels alike.
    freq_mask : int, default=0
        Mask up to this many consecutive mel bands per clip (SpecAugment).
    filter_augment : float, default=0.0
        FilterAugment (Nam et al. 2022): a random filter over the mel axis
        with gains of up to this many dB, linear between 4 to 7 random
        points, added to each clip's log-mel features (one feature unit is
        taken as 80 dB, the extractor's default ``top_db``); 0 turns it
        off. The DESED baselines use 6.

    Examples
    --------
    >>> from sklearn_sed.training.augment import Augment
    >>> Augment(time_shift=0.3, freq_mask=8).collate(pooling=8).time_shift
    0.3
    """

    _parameter_constraints: dict = {
        "time_shift": [Interval(numbers.Real, 0, 1, closed="both")],
        # Bounds: no mel axis has more than MAX_FREQ_MASK bands, and the
        # features span top_db = 80 dB (one feature unit).
        "freq_mask": [Interval(numbers.Integral, 0, MAX_FREQ_MASK, closed="both")],
        "filter_augment": [
            Interval(numbers.Real, 0, MAX_FILTER_AUGMENT_DB, closed="both")
        ],
    }

    def __init__(self, time_shift=0.0, freq_mask=0, filter_augment=0.0):
        self.time_shift = time_shift
        self.freq_mask = freq_mask
        self.filter_augment = filter_augment

    def collate(self, pooling, n_bands=None):
        """Return the collate function of these settings, or None if all are off.

        Parameters
        ----------
        pooling : int
            Input frames per output frame of the network.
        n_bands : int, default=None
            The leading feature columns that are mel bands (the network's
            ``n_mel_bands``); None means every column.

        Returns
        -------
        collate_fn : SEDAugment or None
            None when no transform is on (the plain
            ``collate_float32`` then serves).
        """
        self._validate_params()
        if not (self.time_shift or self.freq_mask or self.filter_augment):
            return None
        return SEDAugment(
            time_shift=self.time_shift,
            freq_mask=self.freq_mask,
            filter_augment=self.filter_augment,
            pooling=pooling,
            n_bands=n_bands,
        )
