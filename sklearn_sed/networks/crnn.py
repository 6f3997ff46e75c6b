"""The DCASE2019 Task 4 baseline architecture: a CRNN, as a torch module.

Three convolution blocks (64 filters, 3x3, batch norm, gated linear unit,
max pooling that divides time by 2 each, so by 8 in all, and frequency down
to 1), a two-layer bidirectional GRU and a per-frame linear layer with a
sigmoid. Clip probabilities come from attention pooling over time, as in the
DCASE baselines, or from max pooling like :class:`~sklearn_sed.networks.ResNetSED`.
It returns ``(frame_probs, clip_probs)``, so :class:`~sklearn_sed.PseudoLabelSED`
trains it like the ResNet (``PseudoLabelSED(module=CRNN)``).
"""

import torch
from torch import nn

__all__ = ["CRNN"]


class _GLUBlock(nn.Module):
    def __init__(self, in_channels, out_channels, pool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(2 * out_channels)
        self.glu = nn.GLU(dim=1)
        self.pool = nn.MaxPool2d(pool, ceil_mode=True)
        self.dropout = nn.Dropout(0.2)

    def forward(self, x):
        return self.dropout(self.pool(self.glu(self.bn(self.conv(x)))))


class CRNN(nn.Module):
    """Convolutional recurrent network of the DCASE2019 Task 4 baseline.

    Parameters
    ----------
    n_classes : int, default=10
        Number of event classes.
    n_filters : int, default=64
        Filters of each convolution block (after the GLU).
    n_mels : int, default=64
        Mel bands of the input; pooled to 1 by the three blocks.
    hidden_size : int, default=64
        GRU units per direction.
    pooling : {"attention", "max"}, default="attention"
        How clip probabilities are formed from frame probabilities.

    See Also
    --------
    sklearn_sed.networks.resnet.ResNetSED : The NEC network.

    Examples
    --------
    >>> import torch
    >>> from sklearn_sed.networks.crnn import CRNN
    >>> net = CRNN(n_classes=3, n_filters=4, hidden_size=4)
    >>> frames, clips = net(torch.rand(2, 64, 64))
    >>> tuple(frames.shape), tuple(clips.shape)
    ((2, 8, 3), (2, 3))
    """

    def __init__(
        self,
        n_classes=10,
        *,
        n_filters=64,
        n_mels=64,
        hidden_size=64,
        pooling="attention",
    ):
        super().__init__()
        if pooling not in ("attention", "max"):
            raise ValueError(
                f"pooling must be 'attention' or 'max'. Got {pooling!r} instead."
            )
        # Frequency pools of 4, 4 and the rest reduce n_mels to 1.
        f3 = max(1, -(-n_mels // 16))
        self.blocks = nn.Sequential(
            _GLUBlock(1, n_filters, (2, 4)),
            _GLUBlock(n_filters, n_filters, (2, 4)),
            _GLUBlock(n_filters, n_filters, (2, f3)),
        )
        self.gru = nn.GRU(
            n_filters,
            hidden_size,
            num_layers=2,
            batch_first=True,
            bidirectional=True,
            dropout=0.2,
        )
        self.fc = nn.Linear(2 * hidden_size, n_classes)
        self.attention = nn.Linear(2 * hidden_size, n_classes)
        self.pooling = pooling

    def forward(self, X):
        """Map (batch, n_frames, n_mels) to frame and clip probabilities.

        Parameters
        ----------
        X : Tensor of shape (batch, n_frames, n_mels)
            Feature maps.

        Returns
        -------
        frame_probs : Tensor of shape (batch, ceil(n_frames / 8), n_classes)
            Frame probabilities.
        clip_probs : Tensor of shape (batch, n_classes)
            Clip probabilities.
        """
        return self._head(self._cnn(X))

    def _cnn(self, X):
        """(batch, n_frames, n_mels) -> (batch, ceil(n_frames / 8), n_filters)."""
        x = self.blocks(X.unsqueeze(1))  # (batch, channels, T', 1)
        return x.mean(dim=3).transpose(1, 2)  # (batch, T', channels)

    def _head(self, x):
        """(batch, T', n_filters) -> frame and clip probabilities."""
        x, _ = self.gru(x)
        # The sigmoid in float32 even under autocast: eqs. 1-3 take log(1 - p).
        frame_probs = torch.sigmoid(self.fc(x).float())
        if self.pooling == "max":
            return frame_probs, frame_probs.amax(dim=1)
        weights = torch.softmax(self.attention(x), dim=1)
        clip_probs = (frame_probs * weights).sum(dim=1).clamp(1e-7, 1 - 1e-7)
        return frame_probs, clip_probs
