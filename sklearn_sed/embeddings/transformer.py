"""Frame embeddings of a pretrained network, as a scikit-learn transformer.

:class:`PretrainedEmbedding` reads a published checkpoint safely
(:mod:`.checkpoints`), runs the frozen network on each clip once, and
returns its frame embeddings pooled to the detector's frames, the way the
DCASE Task 4 baselines since 2023 feed BEATs frames to their CRNN
(adaptive average pooling in time). The network never trains: with
``Pipeline(memory=...)``, or a feature store
(:func:`~sklearn_sed.audio.store.extract_to_store`), it runs once per clip
however many fits and grid-search folds follow.
"""

import collections
import numbers
import os
import threading

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sklearn_sed._device import check_device
from sklearn_sed.audio.features import clip_items
from sklearn_sed.audio.reading import (
    MAX_DURATION_SEC,
    audio_info,
    fix_length,
    to_waveform,
)
from sklearn_sed.embeddings.checkpoints import (
    CheckpointError,
    file_sha256,
    read_checkpoint,
)
from sklearn_sed.embeddings.models import (
    EMBEDDING_MODELS,
    build_embedding_network,
    model_spec,
)

__all__ = ["PretrainedEmbedding"]

#: Seconds read past ``duration`` of a file (the resampler's edge stays exact).
_READ_MARGIN_SEC = 0.1

#: Networks loaded in this process, by file identity and model: a grid
#: search's folds load a 300 MB checkpoint once.
_LOADED = collections.OrderedDict()
_LOADED_MAX = 2
_LOCK = threading.Lock()


def _load_network(path, model):
    """Return ``(network, sha256)`` of a checkpoint, loaded once per process."""
    if not os.path.isfile(path):
        read_checkpoint(path)  # raises, saying what is wrong
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, model)
    with _LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
        loaded = (build_embedding_network(model, path), file_sha256(path))
        _LOADED[key] = loaded
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
        return loaded


class PretrainedEmbedding(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Frame embeddings of a frozen pretrained network, on the detector's frames.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        The published checkpoint file (``Cnn14_mAP=0.431.pth`` ...); read
        without unpickling code, and checked against ``model``.
    model : {"panns-cnn14", "panns-cnn14-16k", "beats"}, default="panns-cnn14"
        The network: PANNs' Cnn14 at 32 kHz (``Cnn14_mAP=0.431.pth``,
        ``Cnn14_DecisionLevelMax_mAP=0.385.pth``) or at 16 kHz
        (``Cnn14_16k_mAP=0.438.pth``), 2048 dimensions per frame; or BEATs
        (``BEATs_iter3_plus_AS2M.pt``, 16 kHz), 768 dimensions per frame.
    n_frames : int, default=128
        Frames per clip returned: the network's own frames (31 per 10 s for
        Cnn14, 62 for BEATs), adaptive-average-pooled in time to the
        detector's output frames (128 for the ResNet and the CRNN).
    sr_in : int, default=None
        Rate in Hz of waveforms given as arrays; None means the model's
        rate. Files and ``(waveform, rate)`` pairs carry their own; every
        clip is resampled to the model's rate.
    duration : float, default=10.0
        Clip length in seconds (zero-padded or cut), as the extractor's.
    batch_size : int, default=8
        Clips per forward pass.
    device : str or torch.device, default="cpu"
        Where the network runs.
    dtype : {"float32", "bfloat16"}, default="float32"
        Compute type (bfloat16 by autocast; the output is float32).
    checkpoint_sha256 : str, default=None
        When given, the checkpoint's SHA-256 must equal it (a loaded model
        file sets it, so that weights and preprocessing cannot drift apart).
    verbose : int, default=0
        Show a progress bar when > 0.

    Attributes
    ----------
    checkpoint_sha256_ : str
        SHA-256 of the checkpoint read in ``fit``.
    n_features_out_ : int
        Dimension of one embedding frame.
    n_frames_ : int
        Frames per clip (``n_frames``).
    network_config_ : dict or None
        BEATs' configuration read from the checkpoint (checked); None for
        PANNs, whose architecture the name fixes.

    See Also
    --------
    FusedFeatures : Log-mel maps with these embeddings beside them.
    sklearn_sed.networks.EmbeddingCRNN : The network that takes them.

    Notes
    -----
    Pickling (joblib) keeps the settings and the hash, not the network:
    the checkpoint is read again, and its hash checked, on first use.
    """

    _parameter_constraints: dict = {
        "checkpoint": [str, os.PathLike],
        "model": [StrOptions(set(EMBEDDING_MODELS))],
        "n_frames": [Interval(numbers.Integral, 1, 100_000, closed="both")],
        "sr_in": [Interval(numbers.Integral, 1, 768_000, closed="both"), None],
        "duration": [Interval(numbers.Real, 0, MAX_DURATION_SEC, closed="right")],
        "batch_size": [Interval(numbers.Integral, 1, 4096, closed="both")],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float32", "bfloat16"})],
        "checkpoint_sha256": [str, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        checkpoint,
        model="panns-cnn14",
        *,
        n_frames=128,
        sr_in=None,
        duration=10.0,
        batch_size=8,
        device="cpu",
        dtype="float32",
        checkpoint_sha256=None,
        verbose=0,
    ):
        self.checkpoint = checkpoint
        self.model = model
        self.n_frames = n_frames
        self.sr_in = sr_in
        self.duration = duration
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.checkpoint_sha256 = checkpoint_sha256
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True  # file paths
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def sr(self):
        """Rate in Hz the network takes (the model's)."""
        return model_spec(self.model)["sample_rate"]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("network_", None)  # read again from the checkpoint when needed
        return state

    # -- loading ----------------------------------------------------------
    def _network(self):
        """Return the network, read (and its hash checked) when not in memory."""
        if getattr(self, "network_", None) is None:
            network, sha = _load_network(os.fspath(self.checkpoint), self.model)
            expected = (
                getattr(self, "checkpoint_sha256_", None) or self.checkpoint_sha256
            )
            if expected is not None and sha != expected.lower():
                raise CheckpointError(
                    f"checkpoint {os.fspath(self.checkpoint)!r} has SHA-256 {sha}, "
                    f"but this {self.model} embedding was made with {expected}: the "
                    "embeddings would differ from those the detector learnt. Give "
                    "the checkpoint it was trained with."
                )
            self.checkpoint_sha256_ = sha
            self.network_ = network.to(self.device)
        return self.network_

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Read and check the checkpoint; the clips are not looked at.

        Parameters
        ----------
        X : list of clips, default=None
            Ignored (the network is pretrained).
        y : None
            Ignored.

        Returns
        -------
        self : PretrainedEmbedding
        """
        check_device(self.device)
        self.network_ = None
        self.checkpoint_sha256_ = None
        network = self._network()
        n_samples = round(self.duration * self.sr)
        if n_samples < network.min_samples:
            raise ValueError(
                f"duration={self.duration} s is {n_samples} samples at "
                f"{self.sr} Hz, shorter than the {network.min_samples} samples "
                f"({network.min_samples / self.sr:.2f} s) that {self.model} needs "
                "for one embedding frame. Use longer clips."
            )
        self.n_features_out_ = int(network.embedding_dim)
        self.network_config_ = getattr(network, "cfg", None)
        self.n_frames_ = int(self.n_frames)
        return self

    # -- computation --------------------------------------------------------
    def _rate_of(self, item):
        if isinstance(item, (str, os.PathLike)):
            return audio_info(item).samplerate
        if (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[1], numbers.Real)
        ):
            return item[1]
        return self.sr_in if self.sr_in is not None else self.sr

    def _waveform(self, item, index):
        rate = self._rate_of(item)
        if rate < self.sr / 2:
            raise ValueError(
                f"X[{index}] is at {rate} Hz; {self.model} takes {self.sr} Hz "
                f"audio, and from below {self.sr // 2} Hz the top half of its band "
                "would be empty, which its embeddings never saw in training. Use "
                "audio at a higher rate"
                + (
                    ", or a 16 kHz model ('panns-cnn14-16k', 'beats')."
                    if self.sr > 16000
                    else "."
                )
            )
        y = to_waveform(
            item,
            index=index,
            sr=self.sr,
            sr_in=self.sr_in,
            max_seconds=self.duration + _READ_MARGIN_SEC,
        )
        return fix_length(y, round(self.duration * self.sr))

    def _embed(self, waveforms):
        network = self._network()
        x = torch.from_numpy(np.stack(waveforms)).to(self.device)
        device_type = torch.device(self.device).type
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type, torch.bfloat16, enabled=self.dtype == "bfloat16"
            ),
        ):
            emb = network(x).float()  # (batch, frames, dim)
        emb = F.adaptive_avg_pool1d(emb.transpose(1, 2), self.n_frames).transpose(1, 2)
        return emb.cpu().numpy().astype(np.float32, copy=False)

    def iter_transform(self, X):
        """Yield the embeddings of ``batch_size`` clips at a time (bounded memory).

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio clips.

        Yields
        ------
        embeddings : ndarray of shape (n_batch, n_frames, n_features)
        """
        check_is_fitted(self, "checkpoint_sha256_")
        items = clip_items(X)
        starts = range(0, len(items), self.batch_size)
        if self.verbose:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=self.model, unit="batch")
        for s in starts:
            chunk = items[s : s + self.batch_size]
            yield self._embed([self._waveform(c, s + k) for k, c in enumerate(chunk)])

    def transform(self, X):
        """Return the frame embeddings of ``X``.

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio file paths, waveforms or ``(waveform, rate)`` pairs.

        Returns
        -------
        embeddings : ndarray of shape (n_clips, n_frames, n_features)
            float32.
        """
        return np.concatenate(list(self.iter_transform(X)))

    def get_feature_names_out(self, input_features=None):
        """Names of the embedding dimensions (the last axis).

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        names : ndarray of shape (n_features,), dtype object
            ``"<model>0"`` ... .
        """
        check_is_fitted(self, "n_features_out_")
        prefix = self.model.replace("-", "_")
        return np.asarray(
            [f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object
        )
