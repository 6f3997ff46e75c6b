import numpy as np
import torch

from sklearn_sed import PseudoLabelSED
from sklearn_sed.augment import SEDAugment


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


def test_estimator_trains_with_augmentation(tiny_dataset):
    """Check PseudoLabelSED trains with time_shift and freq_mask set."""
    from tests.conftest import FAST_SED

    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED, time_shift=0.25, freq_mask=4)
    sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    assert sed.net_.get_params()["iterator_train__collate_fn"].time_shift == 0.25


def _kind_items(kinds):
    """Clips whose features and labels are their index, with the given kinds."""
    items = []
    for i, kind in enumerate(kinds):
        X = np.full((8, 2), float(i), np.float32)
        y = {
            "weak": np.full(3, float(i), np.float32),
            "frames": np.full((2, 3), float(i), np.float32),
            "kind": np.int64(kind),
        }
        items.append((X, y))
    return items


def test_mixup_mixes_features_and_labels_alike_within_a_kind():
    """Check mixup gives each clip lam*self + (1-lam)*other, labels the same,
    and never mixes a strong clip with a weak one."""
    torch.manual_seed(3)
    kinds = [0, 0, 0, 1, 1, 1, 2, 2]
    items = _kind_items(kinds)
    X, y = SEDAugment(mixup=1.0, mixup_alpha=1.0)(items)
    groups = {k: {i for i, kk in enumerate(kinds) if kk == k} for k in set(kinds)}
    mixed = 0
    for i, kind in enumerate(kinds):
        value = float(X[i, 0, 0])
        torch.testing.assert_close(X[i], torch.full((8, 2), value))
        torch.testing.assert_close(y["weak"][i], torch.full((3,), value))
        torch.testing.assert_close(y["frames"][i], torch.full((2, 3), value))
        lo, hi = min(groups[kind]), max(groups[kind])
        assert lo - 1e-5 <= value <= hi + 1e-5  # a mix of its own kind only
        mixed += abs(value - i) > 1e-4
    assert mixed > 0
    assert torch.equal(torch.as_tensor(y["kind"]), torch.as_tensor(kinds))


def test_mixup_zero_leaves_the_batch_alone():
    """Check mixup=0 (the default) changes nothing."""
    items = _kind_items([0, 0, 1, 1])
    X, y = SEDAugment(mixup=0.0)(items)
    torch.testing.assert_close(X[:, 0, 0], torch.arange(4.0))
    torch.testing.assert_close(y["weak"][:, 0], torch.arange(4.0))


def test_estimator_trains_with_mixup(tiny_dataset):
    """Check PseudoLabelSED passes mixup to its collate function and trains."""
    from tests.conftest import FAST_SED

    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED, mixup=0.5)
    sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    assert sed.net_.get_params()["iterator_train__collate_fn"].mixup == 0.5
    assert np.isfinite(sed.net_.history[-1, "train_loss"])
