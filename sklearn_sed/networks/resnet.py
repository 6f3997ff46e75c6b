"""The NEC report's ResNet (section 2, figures 1 and 2) as a torch module.

Layout follows torchvision's ``models/resnet.py``: a block, a stage builder and
the network. Input feature maps of shape (batch, n_frames, n_mels), e.g.
1024 x 64, go through

* the convolution block: 3x3 conv to ``n_filters`` channels, stride 1, BN, ReLU
  (section 2.2);
* four residual stages of ``n_blocks`` basic blocks with ``n_filters`` x
  (1, 2, 4, 8) channels; stages 2-4 halve time and frequency, so that
  64 x 1024 x 64 becomes 512 x 128 x 8 (section 2.3). The first block of every
  stage has a 1x1 convolution + BN on its shortcut (figure 2);
* the fully connected block: mean over frequency, ReLU, a per-frame linear layer
  and a sigmoid give the frame probabilities (128 x n_classes); their max over
  time gives the clip probabilities (section 2.4).
"""

import math
import numbers

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNetSED"]


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2016, figure 2).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    stride : int, default=1
        Stride of the first convolution; 2 halves time and frequency.
    projection : bool, default=False
        Put a 1x1 convolution + BN on the shortcut (first block of a stage).
    """

    def __init__(self, in_channels, out_channels, *, stride=1, projection=False):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if projection
            else nn.Identity()
        )

    def forward(self, x):
        """Map (batch, in_channels, T, F) to (batch, out_channels, T', F')."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetSED(nn.Module):
    """ResNet that outputs frame and clip probabilities (NEC DCASE2019).

    Parameters
    ----------
    n_classes : int, default=10
        Number of event classes.
    n_filters : int, default=64
        Channels of the convolution block and the first stage; stages 2-4 have
        2x, 4x and 8x as many (paper: 64, so 512 at the end).
    n_blocks : int or tuple of 4 ints, default=2
        Basic blocks per stage. The report does not say; 2 (ResNet-18's count)
        is our default.
    strides : tuple of 4 ints, default=(1, 2, 2, 2)
        Stride of each stage; the product (8) is the time pooling factor.

    Attributes
    ----------
    time_pooling : int
        Factor by which the frame count shrinks (8 with the default strides).

    See Also
    --------
    sklearn_sed.PseudoLabelSED : The estimator that trains it.
    sklearn_sed.networks.crnn.CRNN : The DCASE2019 baseline architecture.

    Examples
    --------
    >>> import torch
    >>> from sklearn_sed.networks.resnet import ResNetSED
    >>> net = ResNetSED(n_classes=3, n_filters=4, n_blocks=1).eval()
    >>> frames, clips = net(torch.rand(2, 64, 16))
    >>> tuple(frames.shape), tuple(clips.shape)
    ((2, 8, 3), (2, 3))
    """

    def __init__(self, n_classes=10, *, n_filters=64, n_blocks=2, strides=(1, 2, 2, 2)):
        super().__init__()
        if isinstance(n_blocks, numbers.Integral):
            n_blocks = (int(n_blocks),) * 4
        if len(n_blocks) != 4 or len(strides) != 4:
            raise ValueError(
                "n_blocks and strides must have one entry per stage (4). Got "
                f"n_blocks={n_blocks!r}, strides={strides!r} instead."
            )
        self.n_classes = n_classes
        self.time_pooling = math.prod(int(s) for s in strides)
        self.conv_block = nn.Sequential(
            _conv3x3(1, n_filters), nn.BatchNorm2d(n_filters), nn.ReLU(inplace=True)
        )
        stages = []
        in_channels = n_filters
        for k, (repeats, stride) in enumerate(zip(n_blocks, strides, strict=True)):
            out_channels = n_filters * 2**k
            blocks = [
                BasicBlock(in_channels, out_channels, stride=stride, projection=True)
            ]
            blocks += [
                BasicBlock(out_channels, out_channels) for _ in range(repeats - 1)
            ]
            stages.append(nn.Sequential(*blocks))
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(in_channels, n_classes)
        for m in self.modules():
            # He initialisation for ReLU networks, as torchvision does.
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, X):
        """Compute frame and clip probabilities.

        Parameters
        ----------
        X : Tensor of shape (batch, n_frames, n_mels)
            Feature maps.

        Returns
        -------
        frame_probs : Tensor of shape (batch, ceil(n_frames / 8), n_classes)
            Frame probabilities.
        clip_probs : Tensor of shape (batch, n_classes)
            Clip probabilities, the max of ``frame_probs`` over time.
        """
        x = self.conv_block(X.unsqueeze(1))
        x = self.stages(x)  # (batch, channels, T', F')
        x = self.relu(x.mean(dim=3)).transpose(1, 2)  # (batch, T', channels)
        # The sigmoid in float32 even under autocast: eqs. 1-3 take log(1 - p).
        frame_probs = torch.sigmoid(self.fc(x).float())
        return frame_probs, frame_probs.amax(dim=1)
