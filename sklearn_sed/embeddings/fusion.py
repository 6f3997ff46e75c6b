"""Log-mel maps and pretrained embeddings side by side: the input of late fusion.

The DCASE Task 4 baselines since 2023 concatenate a pretrained network's
frame embeddings with their CNN's output, frame by frame, before the GRU
(late fusion). The detector takes one array per batch, so
:class:`FusedFeatures` puts both in one: the log-mel map as it is, in its
first ``n_mels`` columns, and the embeddings, one embedding frame per
``fold = n_logmel_frames / n_frames`` log-mel frames, in the columns after
them. The embedding of frame ``t`` is cut into ``fold`` equal pieces that
fill rows ``t * fold`` to ``(t + 1) * fold - 1`` (a reshape, nothing lost):

    row r:  [ log-mel frame r (n_mels) | piece r % fold of embedding r // fold ]

With 1024 log-mel frames, 128 embedding frames (the detector's output
frames) and Cnn14's 2048 dimensions: ``fold = 8`` and rows of
``64 + 256 = 320`` values. :class:`~sklearn_sed.networks.EmbeddingCRNN`
undoes the reshape. Time shifts of whole output frames keep both parts
aligned; frequency augmentation touches the log-mel columns only.
"""

import os

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from sklearn_sed.audio.features import LogMelExtractor, clip_items
from sklearn_sed.embeddings.transformer import PretrainedEmbedding

__all__ = ["FusedFeatures", "fold_embeddings", "fold_of"]


def fold_of(frames, emb_frames, dim):
    """Return the log-mel frames per embedding frame, or raise saying why none.

    Parameters
    ----------
    frames : int
        Log-mel frames per clip.
    emb_frames : int
        Embedding frames per clip.
    dim : int
        Values per embedding frame.

    Returns
    -------
    fold : int
        ``frames / emb_frames``, which divides both ``frames`` and ``dim``.
    """
    if frames % emb_frames or dim % (frames // emb_frames):
        raise ValueError(
            f"{emb_frames} embedding frames of {dim} values cannot sit beside "
            f"{frames} log-mel frames: the log-mel frames must be a multiple of "
            "the embedding frames, and the embedding's dimension a multiple of "
            "their ratio. Set the embedding's n_frames to a divisor of "
            f"{frames} (e.g. {frames // 8})."
        )
    return frames // emb_frames


def fold_embeddings(logmel, embeddings):
    """Put embeddings beside log-mel maps, in the layout described above.

    Parameters
    ----------
    logmel : ndarray of shape (n_clips, n_frames, n_mels)
        Log-mel maps.
    embeddings : ndarray of shape (n_clips, n_emb_frames, dim)
        Frame embeddings; ``n_frames`` must be ``fold`` times
        ``n_emb_frames``, and ``dim`` a multiple of ``fold``.

    Returns
    -------
    fused : ndarray of shape (n_clips, n_frames, n_mels + dim / fold)
        float32.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed.embeddings.fusion import fold_embeddings
    >>> fold_embeddings(np.zeros((2, 16, 4)), np.ones((2, 2, 16))).shape
    (2, 16, 6)
    """
    n, frames, _ = logmel.shape
    _, emb_frames, dim = embeddings.shape
    folded = embeddings.reshape(n, frames, dim // fold_of(frames, emb_frames, dim))
    return np.concatenate([logmel, folded], axis=2).astype(np.float32, copy=False)


class FusedFeatures(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Log-mel maps with a pretrained network's frame embeddings beside them.

    Parameters
    ----------
    embedding : PretrainedEmbedding
        The pretrained network (its ``duration`` must equal the log-mel
        extractor's).
    logmel : LogMelExtractor, default=None
        The log-mel extractor; None means ``LogMelExtractor()``.

    Attributes
    ----------
    logmel_, embedding_ : LogMelExtractor, PretrainedEmbedding
        The fitted steps (the parameters, fitted in place, as
        :class:`~sklearn.pipeline.FeatureUnion` does).
    n_frames_ : int
        Rows per clip (the log-mel frames).
    fold_ : int
        Log-mel frames per embedding frame.
    n_features_out_ : int
        Values per row, ``n_mels + dim / fold_``.

    See Also
    --------
    sklearn_sed.embeddings.fusion.fold_embeddings : The layout, as a function.
    sklearn_sed.networks.EmbeddingCRNN : The network that reads it.

    Examples
    --------
    >>> from sklearn_sed import FusedFeatures, PretrainedEmbedding
    >>> fused = FusedFeatures(PretrainedEmbedding("Cnn14_mAP=0.431.pth"))
    >>> fused.duration
    10.0
    """

    _parameter_constraints: dict = {
        "embedding": [PretrainedEmbedding],
        "logmel": [LogMelExtractor, None],
    }

    def __init__(self, embedding, logmel=None):
        self.embedding = embedding
        self.logmel = logmel

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _logmel(self):
        return LogMelExtractor() if self.logmel is None else self.logmel

    # What the pipeline and windowed inference read of a first step.
    @property
    def sr(self):
        """Rate in Hz of the log-mel extractor (windowed inference loads at it)."""
        return self._logmel().sr

    @property
    def sr_in(self):
        """Rate in Hz of waveforms given as arrays (the extractor's)."""
        return self._logmel().sr_in

    @property
    def duration(self):
        """Clip length in seconds (the extractor's)."""
        return self._logmel().duration

    @property
    def n_mels(self):
        """Mel bands: the log-mel columns of each row."""
        return self._logmel().n_mels

    def _embedding_items(self, X):
        """Arrays carry the extractor's rate to the embedding as pairs."""
        rate = self.sr_in or self.sr
        items = clip_items(X)
        return [
            item if isinstance(item, (str, os.PathLike, tuple)) else (item, rate)
            for item in items
        ]

    def _check_durations(self):
        if self.embedding.duration != self.duration:
            raise ValueError(
                f"The embedding's duration ({self.embedding.duration} s) differs "
                f"from the log-mel extractor's ({self.duration} s); set both, e.g. "
                "set_params(embedding__duration=..., logmel__duration=...)."
            )

    def _set_fitted(self, logmel):
        self.logmel_ = logmel
        self.embedding_ = self.embedding
        self.n_frames_ = logmel.n_frames_
        dim = self.embedding.n_features_out_
        self.fold_ = fold_of(self.n_frames_, self.embedding.n_frames_, dim)
        self.n_features_out_ = logmel.n_mels + dim // self.fold_
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the log-mel extractor and read the checkpoint.

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio clips.
        y : None
            Ignored.

        Returns
        -------
        self : FusedFeatures
        """
        self._check_durations()
        logmel = self._logmel().fit(X)
        self.embedding.fit(X)
        return self._set_fitted(logmel)

    def fit_transform(self, X, y=None):
        """Fit, then return the fused features of ``X`` (log-mel in one pass).

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio clips.
        y : None
            Ignored.

        Returns
        -------
        fused : ndarray of shape (n_clips, n_frames, n_features)
        """
        self._validate_params()
        self._check_durations()
        logmel = self._logmel()
        S = logmel.fit_transform(X)
        self.embedding.fit(X)
        self._set_fitted(logmel)
        return fold_embeddings(S, self.embedding.transform(self._embedding_items(X)))

    def iter_transform(self, X):
        """Yield the fused features of 16 clips at a time (bounded memory).

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio clips.

        Yields
        ------
        fused : ndarray of shape (n_chunk, n_frames, n_features)
        """
        check_is_fitted(self, "fold_")
        items = clip_items(X)
        for s in range(0, len(items), 16):
            chunk = items[s : s + 16]
            yield fold_embeddings(
                self.logmel_.transform(chunk),
                self.embedding_.transform(self._embedding_items(chunk)),
            )

    def transform(self, X):
        """Return the fused features of ``X``.

        Parameters
        ----------
        X : list of str, list of ndarray or ndarray of shape (n_clips, n_samples)
            Audio clips.

        Returns
        -------
        fused : ndarray of shape (n_clips, n_frames, n_features)
            float32, laid out as the module docstring says.
        """
        return np.concatenate(list(self.iter_transform(X)))

    def get_feature_names_out(self, input_features=None):
        """Names of the columns of a row: the mel bands, then embedding pieces.

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        names : ndarray of shape (n_features,), dtype object
        """
        check_is_fitted(self, "fold_")
        width = self.n_features_out_ - self.logmel_.n_mels
        return np.concatenate(
            [
                self.logmel_.get_feature_names_out(),
                np.asarray([f"embedding_piece{i}" for i in range(width)], object),
            ]
        )
