"""PANNs' Cnn14 (Kong et al., 2020) as a frame-embedding network, in pure torch.

The module mirrors the published ``Cnn14`` of ``audioset_tagging_cnn``
(and of ``panns-inference``) attribute by attribute, so that the official
checkpoints load into it with ``load_state_dict(strict=True)`` and nothing
renamed: ``spectrogram_extractor.stft.conv_real`` / ``conv_imag`` (the
STFT as two 1-D convolutions, torchlibrosa's way), ``logmel_extractor.melW``
(the mel filters), ``bn0``, ``conv_block1`` ... ``conv_block6``, ``fc1`` and
``fc_audioset``. The STFT kernels and the mel filters are read from the
checkpoint, never rebuilt: the front end is the one the weights were
trained with, whatever librosa version is installed here.

The embedding of a frame is the output of ``conv_block6`` (2048 channels)
averaged over frequency: the trunk that ``Cnn14``,
``Cnn14_DecisionLevelMax`` and ``Cnn14_16k`` share, before their
clip- or frame-level heads. Five average poolings of 2 in time make one
embedding frame per 32 STFT hops: 31 frames per 10 s (0.32 s each).
``tests/test_embeddings.py`` checks it equals the reference module's
intermediate output for random weights.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PANNS_MODELS", "Cnn14Embedding"]

#: The PANNs checkpoints this module takes, by name: their front end.
PANNS_MODELS = {
    # Cnn14_mAP=0.431.pth and Cnn14_DecisionLevelMax_mAP=0.385.pth.
    "panns-cnn14": {
        "sample_rate": 32000,
        "window_size": 1024,
        "hop_size": 320,
        "mel_bins": 64,
    },
    # Cnn14_16k_mAP=0.438.pth.
    "panns-cnn14-16k": {
        "sample_rate": 16000,
        "window_size": 512,
        "hop_size": 160,
        "mel_bins": 64,
    },
}

#: Time poolings of 2 between the STFT frames and the embedding frames.
TIME_POOLINGS = 5


class _ConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x, pool):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool) if pool != (1, 1) else x


class _STFT(nn.Module):
    """The STFT as torchlibrosa computes it: two strided 1-D convolutions."""

    def __init__(self, n_fft, hop):
        super().__init__()
        n_bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, n_bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, n_bins, n_fft, stride=hop, bias=False)
        for conv in (self.conv_real, self.conv_imag):
            conv.weight.requires_grad_(False)


class _Spectrogram(nn.Module):
    def __init__(self, n_fft, hop):
        super().__init__()
        self.n_fft = n_fft
        self.stft = _STFT(n_fft, hop)

    def forward(self, waveform):
        """(batch, n_samples) -> power (batch, 1, n_frames, n_bins)."""
        x = waveform[:, None, :]
        x = F.pad(x, (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = self.stft.conv_real(x)
        imag = self.stft.conv_imag(x)
        return (real**2 + imag**2)[:, None].transpose(2, 3)


class _LogMel(nn.Module):
    def __init__(self, n_bins, n_mels):
        super().__init__()
        self.melW = nn.Parameter(torch.zeros(n_bins, n_mels), requires_grad=False)

    def forward(self, power):
        # torchlibrosa's power_to_db with ref=1.0, amin=1e-10, top_db=None.
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class Cnn14Embedding(nn.Module):
    """PANNs' Cnn14 trunk: waveforms to 2048-dimensional frame embeddings.

    Parameters
    ----------
    sample_rate : int, default=32000
        Rate in Hz of the waveforms it takes (that of the checkpoint).
    window_size : int, default=1024
        STFT size in samples.
    hop_size : int, default=320
        STFT hop in samples (10 ms).
    mel_bins : int, default=64
        Mel bands.
    classes_num : int, default=527
        Outputs of the AudioSet head (``fc_audioset``), kept so that the
        official state dict loads strictly; unused for embeddings.

    See Also
    --------
    sklearn_sed.PretrainedEmbedding : The transformer that loads
        a checkpoint into it.

    Examples
    --------
    >>> import torch
    >>> from sklearn_sed.embeddings.panns import Cnn14Embedding
    >>> net = Cnn14Embedding(sample_rate=16000, window_size=512, hop_size=160)
    >>> net.min_samples
    4960
    """

    def __init__(
        self,
        *,
        sample_rate=32000,
        window_size=1024,
        hop_size=320,
        mel_bins=64,
        classes_num=527,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_size = hop_size
        self.spectrogram_extractor = _Spectrogram(window_size, hop_size)
        self.logmel_extractor = _LogMel(window_size // 2 + 1, mel_bins)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            block = _ConvBlock(widths[i], widths[i + 1])
            setattr(self, f"conv_block{i + 1}", block)
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes_num)

    #: Dimension of one embedding frame.
    embedding_dim = 2048

    @property
    def min_samples(self):
        """Fewest samples that give one embedding frame (2**5 STFT frames)."""
        return (2**TIME_POOLINGS - 1) * self.hop_size

    def forward(self, waveform):
        """Map waveforms to frame embeddings.

        Parameters
        ----------
        waveform : Tensor of shape (batch, n_samples)
            Mono audio at ``sample_rate``, at least :attr:`min_samples` long.

        Returns
        -------
        embeddings : Tensor of shape (batch, n_frames, 2048)
            ``n_frames = (1 + n_samples // hop_size) // 32``.
        """
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # per mel band
        for i in range(1, 6):
            x = getattr(self, f"conv_block{i}")(x, (2, 2))
        x = self.conv_block6(x, (1, 1))
        return x.mean(dim=3).transpose(1, 2)
