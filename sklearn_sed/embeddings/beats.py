"""BEATs (Chen et al., ICML 2023) as a frame-embedding network, in pure torch.

A reimplementation of the published encoder with the official checkpoint's
attribute names (``patch_embedding``, ``layer_norm``,
``post_extract_proj``, ``encoder.pos_conv.0.weight_g`` / ``weight_v``,
``encoder.layers.<i>.self_attn.{q,k,v,out}_proj``, ``grep_linear``,
``grep_a``, ``relative_attention_bias``, ``fc1``, ``fc2`` and the layer
norms), so that ``BEATs_iter3_plus_AS2M.pt`` loads with
``load_state_dict(strict=True)``; its architecture comes from the ``cfg``
stored in the checkpoint, checked against what this module implements.

The front end is Kaldi's filter bank (:func:`kaldi_fbank`: 25 ms Povey
windows every 10 ms, pre-emphasis 0.97, DC removal, 128 triangular mel
bands from 20 Hz to Nyquist, natural log floored at float32's epsilon) of
16 kHz audio scaled to 16-bit range, normalised with BEATs' mean 15.41663
and twice its standard deviation 6.55582. Patches of 16 x 16 (frames x
bands) become tokens, 8 per 16 frames; the encoder is a post-norm
Transformer with DeepNorm residual scaling, a grouped convolutional
position embedding, and gated relative position biases. The embedding of a
frame is the encoder's output averaged over the 8 tokens of its 16 fbank
frames: 768 values every 0.16 s, 62 frames per 10 s.

What is checked (``tests/test_embeddings.py``): the filter bank against
``kaldi-native-fbank`` (Kaldi's algorithm in C++, a test dependency), and
the checkpoint's key layout and shapes. The encoder's numerics could not
be compared with a reference here (docs/embeddings.md says why).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BEATS_CONFIG", "BEATsEmbedding", "kaldi_fbank"]

#: The configuration of ``BEATs_iter3_plus_AS2M.pt`` (and the fields this
#: module reads from a checkpoint's ``cfg``; others must have these values).
BEATS_CONFIG = {
    "input_patch_size": 16,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "deep_norm": True,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
    "finetuned_model": False,
    "predictor_class": 527,
}

#: BEATs' filter-bank normalisation (mean, standard deviation).
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582
#: The attention logits' stabilising scale of the published implementation.
_ALPHA = 32.0


def _mel(freq):
    return 1127.0 * torch.log1p(freq / 700.0)


def _kaldi_mel_banks(n_bins, n_fft, sr, low=20.0, high=None):
    """Kaldi's triangular mel filters, shape (n_bins, n_fft // 2 + 1)."""
    high = sr / 2 if not high else high
    n_half = n_fft // 2
    bin_mel = _mel(torch.arange(n_half, dtype=torch.float64) * sr / n_fft)
    mel_low, mel_high = (
        _mel(torch.tensor(low, dtype=torch.float64)),
        _mel(torch.tensor(high, dtype=torch.float64)),
    )
    delta = (mel_high - mel_low) / (n_bins + 1)
    left = mel_low + torch.arange(n_bins, dtype=torch.float64)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).float()  # the Nyquist bin has no weight


def kaldi_fbank(waveforms, *, sr=16000, n_mels=128, frame_ms=25.0, shift_ms=10.0):
    """Kaldi's log mel filter bank, as BEATs computes it (torchaudio's defaults).

    Parameters
    ----------
    waveforms : Tensor of shape (batch, n_samples)
        Audio at ``sr``, in the scale it is given (BEATs multiplies by 2**15).
    sr : int, default=16000
        Sample rate in Hz.
    n_mels : int, default=128
        Mel bands, from 20 Hz to Nyquist.
    frame_ms, shift_ms : float, default=25.0, 10.0
        Window and hop in milliseconds.

    Returns
    -------
    fbank : Tensor of shape (batch, n_frames, n_mels)
        Natural log of the mel energies (power spectrum, Povey window,
        pre-emphasis 0.97, DC removed per frame, no dither), floored at
        float32's epsilon; ``n_frames = 1 + (n_samples - window) // hop``
        (Kaldi's ``snip_edges``).
    """
    window = round(sr * frame_ms / 1000)
    hop = round(sr * shift_ms / 1000)
    n_fft = 1 << (window - 1).bit_length()
    frames = waveforms.float().unfold(-1, window, hop)  # (batch, frames, window)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - 0.97 * previous
    povey = torch.hann_window(window, periodic=False, dtype=torch.float64).pow(0.85)
    frames = frames * povey.to(frames)
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)
    banks = _kaldi_mel_banks(n_mels, n_fft, sr).to(power)
    energies = power @ banks.T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()


class _WeightNormConv(nn.Module):
    """A grouped 1-D convolution with weight normalisation over dim 2.

    Stores ``weight_g`` and ``weight_v`` as the official checkpoint does
    (``torch.nn.utils.weight_norm(conv, dim=2)``).
    """

    def __init__(self, channels, kernel, groups):
        super().__init__()
        self.padding = kernel // 2
        self.groups = groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight_v, std=0.02)

    def forward(self, x):
        norm = self.weight_v.norm(dim=(0, 1), keepdim=True)
        weight = self.weight_v * (self.weight_g / norm)
        out = F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)
        return out[..., :-1] if self.padding * 2 == weight.shape[-1] else out


class _PositionConv(nn.Sequential):
    """``encoder.pos_conv``: the convolution (index 0), a trim and GELU."""

    def __init__(self, channels, kernel, groups):
        super().__init__(_WeightNormConv(channels, kernel, groups), nn.GELU())


class _Attention(nn.Module):
    """Multi-head self-attention with BEATs' gated relative position bias."""

    def __init__(self, dim, heads, num_buckets, max_distance, shared_bias):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
        self.relative_attention_bias = shared_bias

    def _buckets(self, length):
        """Bucket of each relative position (key - query), bidirectional."""
        pos = torch.arange(length)
        relative = pos[None, :] - pos[:, None]
        half = self.num_buckets // 2
        buckets = (relative > 0).long() * half
        distance = relative.abs()
        exact = half // 2
        far = (
            exact
            + (
                torch.log(distance.float().clamp(min=1) / exact)
                / math.log(self.max_distance / exact)
                * (half - exact)
            ).long()
        )
        far = far.clamp(max=half - 1)
        return buckets + torch.where(distance < exact, distance, far)

    def position_bias(self, length):
        """(heads, length, length) bias from the shared bucket embedding."""
        buckets = self._buckets(length).to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x, bias):
        batch, length, dim = x.shape
        h, d = self.heads, self.head_dim
        q = self.q_proj(x).view(batch, length, h, d).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, h, d).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, h, d).transpose(1, 2)
        # Logits as the published code forms them: scaled down by alpha,
        # shifted by their maximum, scaled back (softmax is unchanged by the
        # shift; the order of operations keeps float16/bfloat16 in range).
        logits = (q * (d**-0.5 / _ALPHA)) @ k.transpose(-1, -2)
        logits = (logits - logits.amax(dim=-1, keepdim=True)) * _ALPHA
        gates = torch.sigmoid(self.grep_linear(q).view(batch, h, length, 2, 4).sum(-1))
        gate_a, gate_b = gates[..., :1], gates[..., 1:]
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0  # (batch, h, L, 1)
        weights = torch.softmax(logits + gate * bias[None], dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(out)


class _Layer(nn.Module):
    """A post-norm Transformer layer with DeepNorm residual scaling."""

    def __init__(self, dim, ffn, heads, num_buckets, max_distance, alpha, shared_bias):
        super().__init__()
        self.self_attn = _Attention(dim, heads, num_buckets, max_distance, shared_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = alpha

    def forward(self, x, bias):
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.alpha + self.fc2(F.gelu(self.fc1(x))))


class _Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim, n_layers = cfg["encoder_embed_dim"], cfg["encoder_layers"]
        self.pos_conv = _PositionConv(dim, cfg["conv_pos"], cfg["conv_pos_groups"])
        shared = nn.Embedding(cfg["num_buckets"], cfg["encoder_attention_heads"])
        alpha = (2 * n_layers) ** 0.25 if cfg["deep_norm"] else 1.0
        self.layers = nn.ModuleList(
            _Layer(
                dim,
                cfg["encoder_ffn_embed_dim"],
                cfg["encoder_attention_heads"],
                cfg["num_buckets"],
                cfg["max_distance"],
                alpha,
                shared,  # one table for every layer, as published
            )
            for _ in range(n_layers)
        )
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.layer_norm(x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2))
        bias = self.layers[0].self_attn.position_bias(x.shape[1]).to(x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return x


class BEATsEmbedding(nn.Module):
    """BEATs' encoder: 16 kHz waveforms to 768-dimensional frame embeddings.

    Parameters
    ----------
    cfg : dict, default=None
        The checkpoint's ``cfg``; None means
        :data:`~sklearn_sed.embeddings.beats.BEATS_CONFIG`. Fields
        this module does not implement otherwise (``layer_norm_first``,
        ``activation_fn``, ...) must have the values of
        :data:`~sklearn_sed.embeddings.beats.BEATS_CONFIG`.

    Attributes
    ----------
    sample_rate : int
        16000.
    embedding_dim : int
        ``encoder_embed_dim`` (768).
    min_samples : int
        Fewest samples that give one embedding frame (16 fbank frames).
    """

    sample_rate = 16000
    hop_size = 160

    def __init__(self, cfg=None):
        super().__init__()
        cfg = {**BEATS_CONFIG, **(cfg or {})}
        self.cfg = cfg
        patch = cfg["input_patch_size"]
        self.patch = patch
        self.patch_embedding = nn.Conv2d(
            1, cfg["embed_dim"], patch, stride=patch, bias=cfg["conv_bias"]
        )
        self.layer_norm = nn.LayerNorm(cfg["embed_dim"])
        self.post_extract_proj = (
            nn.Linear(cfg["embed_dim"], cfg["encoder_embed_dim"])
            if cfg["embed_dim"] != cfg["encoder_embed_dim"]
            else None
        )
        self.encoder = _Encoder(cfg)
        if cfg["finetuned_model"]:  # the AudioSet head, kept to load strictly
            self.predictor = nn.Linear(cfg["encoder_embed_dim"], cfg["predictor_class"])
        self.embedding_dim = cfg["encoder_embed_dim"]

    @property
    def min_samples(self):
        """Fewest samples that give one embedding frame."""
        return 400 + (self.patch - 1) * self.hop_size

    def forward(self, waveform):
        """Map 16 kHz waveforms to frame embeddings.

        Parameters
        ----------
        waveform : Tensor of shape (batch, n_samples)
            Mono audio in [-1, 1] at 16 kHz, at least :attr:`min_samples`.

        Returns
        -------
        embeddings : Tensor of shape (batch, n_frames, 768)
            ``n_frames = n_fbank_frames // 16``, 0.16 s each.
        """
        x, frames, bands = self.tokens(waveform)
        return x.reshape(x.shape[0], frames, bands, -1).mean(dim=2)

    def tokens(self, waveform):
        """Return the encoder's output tokens, time-major, before averaging.

        Parameters
        ----------
        waveform : Tensor of shape (batch, n_samples)
            Mono audio in [-1, 1] at 16 kHz.

        Returns
        -------
        tokens : Tensor of shape (batch, n_frames * n_bands, dim)
            Token ``t * n_bands + b`` covers frames ``16 t`` to ``16 t + 15``
            and mel bands ``16 b`` to ``16 b + 15``.
        n_frames, n_bands : int
        """
        with torch.autocast(waveform.device.type, enabled=False):
            fbank = kaldi_fbank(waveform.float() * 2**15)
        fbank = (fbank - FBANK_MEAN) / (2 * FBANK_STD)
        x = self.patch_embedding(fbank.unsqueeze(1))  # (batch, C, T', F')
        batch, channels, frames, bands = x.shape
        x = self.layer_norm(x.reshape(batch, channels, -1).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x), frames, bands
