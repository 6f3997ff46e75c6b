"""The DCASE baseline's CRNN with pretrained embeddings fused before its GRU.

As in the DCASE Task 4 baselines since 2023 (``DESED_task``'s ``CRNN``
with ``pretrained: {e2e: False, freezed: True}``): the CNN's output
frames and the embedding frames are concatenated, projected back to the
CNN's width by a linear layer, and go through the GRU and the classifier
of :class:`~sklearn_sed.networks.CRNN`. With ``n_mels=0`` there is no CNN:
the embeddings alone are projected and go to the GRU.

Input layouts (:mod:`sklearn_sed.embeddings.fusion`):

- ``n_mels > 0``: ``(batch, n_frames, n_mels + embed_dim / fold)``, the
  log-mel map in the first ``n_mels`` columns and each embedding frame
  folded over ``fold`` rows after them, with ``n_frames / fold`` equal to
  the CNN's output frames (``ceil(n_frames / 8)``), as
  :class:`~sklearn_sed.FusedFeatures` writes it;
- ``n_mels = 0``: ``(batch, n_frames, embed_dim)``, as
  :class:`~sklearn_sed.PretrainedEmbedding` writes it.
"""

import torch
from torch import nn

from sklearn_sed.networks.crnn import CRNN

__all__ = ["EmbeddingCRNN"]


class EmbeddingCRNN(CRNN):
    """CRNN with pretrained frame embeddings fused before the GRU (late fusion).

    Parameters
    ----------
    n_classes : int, default=10
        Number of event classes.
    embed_dim : int, default=2048
        Dimension of one embedding frame (2048 for PANNs' Cnn14).
    n_mels : int, default=64
        Mel bands of the log-mel branch; 0 for embeddings alone.
    n_filters : int, default=64
        Filters of each convolution block, and the width the fused frames
        are projected to.
    hidden_size : int, default=64
        GRU units per direction.
    pooling : {"attention", "max"}, default="attention"
        How clip probabilities are formed from frame probabilities.

    Attributes
    ----------
    n_mel_bands : int
        The input columns that are mel bands (``n_mels``): frequency
        augmentation touches these only.

    Examples
    --------
    >>> import torch
    >>> from sklearn_sed.networks import EmbeddingCRNN
    >>> net = EmbeddingCRNN(3, embed_dim=16, n_mels=8, n_filters=4, hidden_size=4)
    >>> frames, clips = net(torch.rand(2, 64, 8 + 16 // 8))  # 8 rows per frame
    >>> tuple(frames.shape), tuple(clips.shape)
    ((2, 8, 3), (2, 3))
    >>> alone = EmbeddingCRNN(3, embed_dim=16, n_mels=0, n_filters=4, hidden_size=4)
    >>> tuple(alone(torch.rand(2, 8, 16))[0].shape)
    (2, 8, 3)
    """

    def __init__(
        self,
        n_classes=10,
        *,
        embed_dim=2048,
        n_mels=64,
        n_filters=64,
        hidden_size=64,
        pooling="attention",
    ):
        if not (isinstance(n_mels, int) and n_mels >= 0):
            raise ValueError(f"n_mels must be an int >= 0. Got {n_mels!r} instead.")
        if not (isinstance(embed_dim, int) and embed_dim >= 1):
            raise ValueError(
                f"embed_dim must be an int >= 1. Got {embed_dim!r} instead."
            )
        super().__init__(
            n_classes,
            n_filters=n_filters,
            n_mels=max(n_mels, 1),
            hidden_size=hidden_size,
            pooling=pooling,
        )
        self.embed_dim = embed_dim
        self.n_mel_bands = n_mels
        if n_mels == 0:
            self.blocks = None
        self.fuse = nn.Linear(embed_dim + (n_filters if n_mels else 0), n_filters)

    def _embeddings(self, E, n_out):
        """Unfold the embedding columns into (batch, n_out, embed_dim)."""
        batch, rows, width = E.shape
        if rows * width != n_out * self.embed_dim:
            raise ValueError(
                f"EmbeddingCRNN got {width} embedding values on each of {rows} "
                f"rows: that is not {n_out} frames of {self.embed_dim} values "
                "(one per CNN output frame). Build the features with "
                "FusedFeatures, whose embedding n_frames is the log-mel frames / 8."
            )
        return E.reshape(batch, n_out, self.embed_dim)

    def forward(self, X):
        """Map fused features to frame and clip probabilities.

        Parameters
        ----------
        X : Tensor of shape (batch, n_frames, n_features)
            In one of the layouts of the module docstring.

        Returns
        -------
        frame_probs : Tensor of shape (batch, n_frames_out, n_classes)
            ``ceil(n_frames / 8)`` frames with a log-mel branch, ``n_frames``
            without.
        clip_probs : Tensor of shape (batch, n_classes)
        """
        if self.n_mel_bands == 0:
            if X.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"EmbeddingCRNN(n_mels=0) takes {self.embed_dim} values per "
                    f"frame; got {X.shape[-1]}."
                )
            return self._head(self.fuse(X))
        cnn = self._cnn(X[..., : self.n_mel_bands])
        emb = self._embeddings(X[..., self.n_mel_bands :], cnn.shape[1])
        return self._head(self.fuse(torch.cat([cnn, emb.to(cnn.dtype)], dim=-1)))
