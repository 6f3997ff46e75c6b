import numpy as np
import pytest
import torch

from sklearn_sed import Augment, PseudoLabelSED
from sklearn_sed.training.augment import SEDAugment


def test_time_shift_keeps_frames_and_labels_aligned():
    """Check features and frame labels are shifted by the same time."""
    torch.manual_seed(0)
    n_out, pool = 8, 4
    items = []
    for start in range(6):
        labels = np.zeros((n_out, 1), np.float32)
        labels[start : start + 2] = 1
        X = np.repeat(labels, pool, axis=0) * np.ones((1, 3), np.float32)
        items.append((X, {"frames": labels, "kind": np.int64(1)}))
    X, y = SEDAugment(time_shift=0.5, pooling=pool)(items)
    shifted = 0
    for i in range(len(items)):
        active_in = X[i, :, 0].reshape(n_out, pool).max(dim=1).values
        torch.testing.assert_close(active_in, y["frames"][i, :, 0])
        shifted += not torch.equal(
            y["frames"][i], torch.as_tensor(items[i][1]["frames"])
        )
    assert shifted > 0  # at least one clip actually moved


def test_freq_mask_zeroes_a_band_only():
    """Check frequency masking zeroes whole bands and leaves labels alone."""
    torch.manual_seed(1)
    items = [
        (np.ones((16, 10), np.float32), {"frames": np.ones((2, 1), np.float32)})
        for _ in range(8)
    ]
    X, y = SEDAugment(freq_mask=4)(items)
    for x in X:
        band = (x == 0).all(dim=0)
        assert band.sum() <= 4
        assert torch.equal((x == 0).any(dim=0), band)  # masked bins are whole bands
    assert (X == 0).any()
    assert torch.equal(y["frames"], torch.ones(8, 2, 1))


def test_filter_augment_adds_one_bounded_piecewise_linear_filter_per_clip():
    """Check FilterAugment adds, to each clip, a gain that is the same in every
    frame, within +-filter_augment dB, linear between a few edges, and leaves
    the labels alone."""
    torch.manual_seed(2)
    n_frames, n_bins = 16, 64
    rng = np.random.default_rng(0)
    items = [
        (
            rng.random((n_frames, n_bins)).astype(np.float32),
            {"frames": np.ones((2, 1), np.float32)},
        )
        for _ in range(12)
    ]
    aug = SEDAugment(filter_augment=6.0, db_range=80.0)
    X, y = aug(items)
    filters = []
    for x, (x_in, _) in zip(X, items, strict=True):
        gain = x - torch.from_numpy(x_in)
        torch.testing.assert_close(gain, gain[:1].expand_as(gain))  # same each frame
        g = gain[0]
        assert g.abs().max() <= 6.0 / 80.0 + 1e-6
        # Piecewise linear with at most 6 bands: the second difference is
        # zero except at the (at most 5) inner edges.
        kinks = (g[2:] - 2 * g[1:-1] + g[:-2]).abs() > 1e-5
        assert int(kinks.sum()) <= 2 * 5
        filters.append(g)
    assert torch.equal(y["frames"], torch.ones(12, 2, 1))
    assert any((f.abs() > 0.02).any() for f in filters)  # not a no-op
    assert not torch.allclose(filters[0], filters[1])  # one filter per clip


def test_filter_augment_off_leaves_features_unchanged():
    """Check filter_augment=0 (the default) adds nothing."""
    items = [(np.full((8, 10), 0.5, np.float32), {"frames": np.ones((1, 1))})] * 3
    X, _ = SEDAugment()(items)
    assert torch.equal(X, torch.full((3, 8, 10), 0.5))


def test_estimator_trains_with_augmentation(tiny_dataset):
    """Check PseudoLabelSED trains with time_shift and freq_mask set."""
    from tests.conftest import FAST_SED

    d = tiny_dataset
    augment = Augment(time_shift=0.25, freq_mask=4, filter_augment=6)
    sed = PseudoLabelSED(**FAST_SED, augment=augment)
    sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    collate = sed.net_.get_params()["iterator_train__collate_fn"]
    assert (collate.time_shift, collate.freq_mask) == (0.25, 4)
    assert collate.filter_augment == 6


@pytest.mark.parametrize("gain", [-3.0, "6 dB"])
def test_filter_augment_that_is_not_a_gain_is_refused_before_training(
    tiny_dataset, gain
):
    """Check a negative or non-numeric filter_augment is refused at fit with
    the parameter's name and what it takes."""
    from tests.conftest import FAST_SED

    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED, augment=Augment(filter_augment=gain))
    with pytest.raises(ValueError, match=r"'filter_augment' parameter.*range \[0"):
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    assert not hasattr(sed, "net_")
