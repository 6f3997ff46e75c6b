import numpy as np
import pytest
import torch

from sklearn_sed import PseudoLabelSchedule
from sklearn_sed.networks.resnet import ResNetSED


def test_resnet_paper_size_shapes():
    """Check 1024 x 64 input gives 128 x 10 frames and 10 clip outputs, with
    512 x 128 x 8 before the fully connected block (section 2)."""
    net = ResNetSED(n_classes=10, n_filters=64, n_blocks=1).eval()
    x = torch.rand(1, 1024, 64)
    with torch.no_grad():
        inner = net.stages(net.conv_block(x.unsqueeze(1)))
        frames, clips = net(x)
    assert tuple(inner.shape) == (1, 512, 128, 8)
    assert tuple(frames.shape) == (1, 128, 10)
    assert tuple(clips.shape) == (1, 10)


def test_resnet_clip_is_max_over_frames():
    """Check that clip probabilities are the max of frame probabilities."""
    net = ResNetSED(n_classes=3, n_filters=4, n_blocks=1).eval()
    with torch.no_grad():
        frames, clips = net(torch.rand(2, 64, 16))
    torch.testing.assert_close(clips, frames.max(dim=1).values)
    assert frames.min() >= 0
    assert frames.max() <= 1


def test_resnet_block_count_and_projection_shortcuts():
    """Check n_blocks blocks per stage and a projection on each first block."""
    net = ResNetSED(n_filters=4, n_blocks=3)
    assert [len(stage) for stage in net.stages] == [3, 3, 3, 3]
    for stage in net.stages:
        assert isinstance(stage[0].shortcut, torch.nn.Sequential)
        assert isinstance(stage[1].shortcut, torch.nn.Identity)


def test_resnet_channel_widths_double():
    """Check stage widths n_filters x (1, 2, 4, 8)."""
    net = ResNetSED(n_filters=5, n_blocks=1)
    assert [stage[0].conv1.out_channels for stage in net.stages] == [5, 10, 20, 40]


def test_crnn_shapes_and_training_with_estimator():
    """Check the DCASE2019 baseline CRNN gives /8 frames and trains in
    PseudoLabelSED(module=...)."""
    import functools

    import numpy as np

    from sklearn_sed import PseudoLabelSED
    from sklearn_sed.networks.crnn import CRNN

    net = CRNN(n_classes=4, n_filters=8, hidden_size=8).eval()
    with torch.no_grad():
        frames, clips = net(torch.rand(2, 1024, 64))
    assert tuple(frames.shape) == (2, 128, 4)
    assert tuple(clips.shape) == (2, 4)
    small = functools.partial(CRNN, n_filters=4, hidden_size=4)
    X = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
    sed = PseudoLabelSED(
        small,
        max_epochs=1,
        pseudo_labels=PseudoLabelSchedule(max_iter=1),
        duration=1.0,
        random_state=0,
    )
    sed.fit(X, [["a"], ["b"], [], ["a"]], [[(0.0, 0.5, "a")], None, [], None])
    assert sed.predict_frames(X).shape == (4, 8, 2)


class _Logits(torch.nn.Module):
    """Breaks the contract in a chosen way."""

    def __init__(self, n_classes, fault="logits"):
        super().__init__()
        self.fault = fault
        self.fc = torch.nn.Linear(1, n_classes)

    def forward(self, X):
        frames = self.fc(X.mean(2, keepdim=True))  # (batch, n_frames, n_classes)
        if self.fault == "logits":
            return frames * 100, frames.amax(1) * 100
        if self.fault == "single":
            return torch.sigmoid(frames)
        return torch.sigmoid(frames), torch.sigmoid(frames)  # clip shape wrong


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        ("logits", ValueError, "outside \\[0, 1\\].*sigmoid"),
        ("single", TypeError, "must return \\(frame_probs, clip_probs\\)"),
        ("clip_shape", ValueError, "clip_probs of shape"),
    ],
)
def test_module_contract_is_checked_at_fit_with_the_fix(fault, error, match):
    """Check a user module that breaks the (frame_probs, clip_probs) contract is
    refused when fit starts, naming the module and what was expected."""
    import functools

    from sklearn_sed import PseudoLabelSED

    X = np.random.default_rng(0).random((4, 16, 8), dtype=np.float32)
    sed = PseudoLabelSED(
        module=functools.partial(_Logits, fault=fault),
        max_epochs=1,
        pseudo_labels=None,
        duration=1.0,
    )
    with pytest.raises(error, match=match) as info:
        sed.fit(X, [["a"], ["b"], ["a"], ["b"]])
    assert "_Logits" in str(info.value)


def test_library_networks_keep_the_contract():
    """Check ResNetSED and CRNN pass check_module_output."""
    from sklearn_sed.networks import check_module_output
    from sklearn_sed.networks.crnn import CRNN

    X = np.random.default_rng(0).random((2, 64, 32), dtype=np.float32)
    assert check_module_output(ResNetSED(3, n_filters=2, n_blocks=1), X, 3) == 8
    assert check_module_output(CRNN(n_classes=3, n_filters=4), X, 3) > 0
