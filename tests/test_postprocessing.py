import numpy as np
import pytest

from sklearn_sed.decoding.decode import decode_events, median_filter_frames


def test_median_filter_removes_short_gaps_and_blips():
    """Check a 3-frame median fills 1-frame gaps and removes 1-frame blips."""
    x = np.array([[0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0]], dtype=float).T
    out = median_filter_frames(x, median_filter_sec=0.3, frame_sec=0.1)
    assert out[:, 0].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


def test_median_filter_per_class_lengths():
    """Check per-class filter lengths apply to their own class only."""
    x = np.zeros((9, 2))
    x[4, :] = 1
    out = median_filter_frames(x, median_filter_sec=[0.0, 0.3], frame_sec=0.1)
    assert out[4, 0] == 1
    assert out[4, 1] == 0


def test_decode_events_orders_differ():
    """Check threshold_first and filter_first can give different events."""
    p = np.array([0.6, 0.6, 0.4, 0.6, 0.9, 0.1, 0.1])[None, :, None]
    a = decode_events(
        p,
        classes=["x"],
        duration=0.7,
        threshold=0.5,
        median_filter_sec=0.3,
        order="threshold_first",
    )
    b = decode_events(
        p,
        classes=["x"],
        duration=0.7,
        threshold=0.7,
        median_filter_sec=0.3,
        order="filter_first",
    )
    assert a == [[(0.0, pytest.approx(0.5), "x")]]
    assert b == [[]]  # the median of (0.6, 0.9, 0.1) is 0.6 < 0.7


def test_decode_events_per_class_threshold():
    """Check per-class thresholds."""
    p = np.full((1, 4, 2), 0.6)
    events = decode_events(p, classes=["a", "b"], duration=4.0, threshold=[0.5, 0.7])
    assert events == [[(0.0, 4.0, "a")]]


def test_decode_events_bad_order_message():
    """Check the error names the allowed orders."""
    with pytest.raises(ValueError, match="order must be one of"):
        decode_events(np.zeros((1, 2, 1)), classes=["a"], duration=1.0, order="x")


def test_hysteresis_keeps_an_event_whole_through_dips_below_the_threshold():
    """A run above ``low_threshold`` that reaches ``threshold`` is one event;
    a run that never reaches ``threshold`` is none."""
    p = np.zeros((1, 20, 1))
    p[0, 2:12, 0] = [0.9, 0.4, 0.6, 0.3, 0.35, 0.7, 0.4, 0.3, 0.6, 0.3]
    p[0, 14:18, 0] = 0.4  # above the low threshold, never above the high one
    single = decode_events(p, classes=["a"], duration=20.0, threshold=0.5)
    assert single == [
        [(2.0, 3.0, "a"), (4.0, 5.0, "a"), (7.0, 8.0, "a"), (10.0, 11.0, "a")]
    ]
    hyst = decode_events(
        p, classes=["a"], duration=20.0, threshold=0.5, low_threshold=0.25
    )
    assert hyst == [[(2.0, 12.0, "a")]]


def test_hysteresis_equal_to_the_threshold_is_single_thresholding():
    rng = np.random.default_rng(0)
    p = rng.random((3, 50, 2))
    kw = dict(classes=["a", "b"], duration=5.0, threshold=[0.4, 0.6])
    for order in ("threshold_first", "filter_first"):
        assert decode_events(p, order=order, low_threshold=[0.4, 0.6], **kw) == (
            decode_events(p, order=order, **kw)
        )


def test_hysteresis_low_threshold_above_the_threshold_is_refused():
    p = np.zeros((1, 10, 2))
    with pytest.raises(ValueError, match="low_threshold must be at most"):
        decode_events(
            p, classes=["a", "b"], duration=1.0, threshold=0.5, low_threshold=[0.3, 0.6]
        )
