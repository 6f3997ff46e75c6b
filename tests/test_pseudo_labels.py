import numpy as np
import pytest

from sklearn_sed.decoding.decode import hysteresis
from sklearn_sed.training.pseudo_labels import select_pseudo_labels, threshold_schedule


def test_threshold_schedule_falls_from_075_to_floor():
    """Check eq. 5 as the text describes it: max(0.75 - delta i, 0.25)."""
    got = [threshold_schedule(i, delta=0.1) for i in range(8)]
    np.testing.assert_allclose(got, [0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.25, 0.25])


def test_threshold_schedule_is_not_the_printed_min():
    """Check that i = 0 gives 0.75 (the printed min would give 0.25)."""
    assert threshold_schedule(0, delta=0.05) == 0.75


def test_threshold_schedule_rejects_negative_iteration():
    """Check the error message for a negative iteration."""
    with pytest.raises(ValueError, match="iteration must be an int >= 0"):
        threshold_schedule(-1)


def test_select_pseudo_labels_keeps_only_matching_clips():
    """Check that only clips whose binarized clip prediction equals the weak
    label are selected, and that their frames are eq. 4."""
    frames = np.array(
        [
            [[0.8, 0.1], [0.4, 0.2], [0.7, 0.3]],  # predicts {0}: label {0}
            [[0.8, 0.7], [0.1, 0.1], [0.1, 0.1]],  # predicts {0,1}: label {0}
            [[0.2, 0.1], [0.1, 0.1], [0.1, 0.1]],  # predicts {}: label {1}
            [[0.1, 0.1], [0.1, 0.1], [0.1, 0.1]],  # predicts {}: label {}
        ]
    )
    weak = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    selected, pseudo = select_pseudo_labels(
        frames.max(axis=1), frames, weak, threshold=0.5
    )
    assert selected.tolist() == [True, False, False, True]
    np.testing.assert_array_equal(pseudo[0], [[1, 0], [0, 0], [1, 0]])
    np.testing.assert_array_equal(pseudo[3], np.zeros((3, 2)))


def test_select_pseudo_labels_uses_threshold_inclusively():
    """Check that p >= theta counts as active (eq. 4)."""
    frames = np.array([[[0.5]]])
    selected, pseudo = select_pseudo_labels(frames[:, 0], frames, [[1]], threshold=0.5)
    assert selected[0]
    assert pseudo[0, 0, 0] == 1


def test_select_pseudo_labels_checks_shapes():
    """Check the shape error message."""
    with pytest.raises(ValueError, match="must match"):
        select_pseudo_labels(
            np.zeros((2, 2)), np.zeros((2, 3, 2)), np.zeros((3, 2)), threshold=0.5
        )


def test_hysteresis_keeps_the_runs_that_hold_a_high_frame():
    """Check the vectorised hysteresis (also the decoder's, through
    binarize) against a frame-by-frame walk, and that it never joins frames
    of other clips or classes."""

    rng = np.random.default_rng(1)
    p = rng.random((7, 30, 4))
    got = hysteresis(p >= 0.8, p >= 0.3)
    # Reference: walk each clip and class, frame by frame.
    want = np.zeros(p.shape, dtype=bool)
    for i, c in np.ndindex(p.shape[0], p.shape[2]):
        t = 0
        while t < p.shape[1]:
            if p[i, t, c] < 0.3:
                t += 1
                continue
            end = t
            while end < p.shape[1] and p[i, end, c] >= 0.3:
                end += 1
            want[i, t:end, c] = (p[i, t:end, c] >= 0.8).any()
            t = end
    np.testing.assert_array_equal(got, want)
    # One clip's run ends where the next clip starts.
    edge = np.zeros((2, 3, 1))
    edge[0, :, 0] = [0.1, 0.4, 0.9]
    edge[1, :, 0] = [0.4, 0.1, 0.1]
    assert hysteresis(edge >= 0.8, edge >= 0.3)[1, 0, 0] == False  # noqa: E712
