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
