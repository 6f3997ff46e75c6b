import numpy as np
import pytest

from sklearn_sed.labels import (
    EventEncoder,
    check_events,
    encode_weak_labels,
    events_to_frames,
    frames_to_events,
)


def test_encode_weak_labels_from_strings_sorted_classes():
    """Check label collections become an indicator matrix with sorted classes."""
    Y, classes = encode_weak_labels([["Speech", "Dog"], [], "Dog,Cat"])
    assert classes.tolist() == ["Cat", "Dog", "Speech"]
    np.testing.assert_array_equal(Y, [[0, 1, 1], [0, 0, 0], [1, 1, 0]])


def test_encode_weak_labels_rejects_unknown_class():
    """Check a label outside `classes` raises with the remedy."""
    with pytest.raises(ValueError, match="not in classes"):
        encode_weak_labels([["Dog"], ["Cow"]], classes=["Dog"])


def test_encode_weak_labels_indicator_matrix():
    """Check an indicator matrix passes through with integer classes."""
    _Y, classes = encode_weak_labels(np.array([[1, 0], [0, 1]]))
    assert classes.tolist() == [0, 1]
    with pytest.raises(ValueError, match="only 0 and 1"):
        encode_weak_labels(np.array([[2, 0]]))


def test_events_to_frames_marks_overlapping_frames():
    """Check floor(onset) .. ceil(offset) frames are active."""
    frames = events_to_frames(
        [(1.5, 3.2, "a")], classes=["a", "b"], n_frames=10, duration=10.0
    )
    assert frames[:, 0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert frames[:, 1].sum() == 0


def test_frames_to_events_round_trip_on_grid():
    """Check frames -> events -> frames is the identity."""
    frames = np.zeros((20, 2))
    frames[3:7, 0] = 1
    frames[15:20, 1] = 1
    events = frames_to_events(frames, classes=["a", "b"], duration=2.0)
    assert events == [
        (pytest.approx(0.3), pytest.approx(0.7), "a"),
        (pytest.approx(1.5), pytest.approx(2.0), "b"),
    ]
    back = events_to_frames(events, classes=["a", "b"], n_frames=20, duration=2.0)
    np.testing.assert_array_equal(back, frames)


def test_check_events_clips_with_warning():
    """Check events past the clip are clipped with a warning."""
    with pytest.warns(UserWarning, match="clipped"):
        out = check_events(
            [(-0.5, 2.0, "a"), (9.0, 11.0, "a")], duration=10.0, classes=["a"]
        )
    assert out == [(0.0, 2.0, "a"), (9.0, 10.0, "a")]


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ((2.0, 1.0, "a"), "onset < offset"),
        ((1.0, 1.0, "a"), "onset < offset"),
        ((1.0, 2.0, "zzz"), "not one of the classes"),
        ((1.0, "x", "a"), "onset, offset, event_label"),
    ],
)
def test_check_events_errors(event, match):
    """Check each bad event gets a message naming it."""
    with pytest.raises(ValueError, match=match):
        check_events([event], duration=10.0, classes=["a"], name="y_strong[3]")


def test_event_encoder_frame_sec():
    """Check the encoder's frame length and round trip."""
    enc = EventEncoder(["a"], n_frames=128, duration=10.0)
    assert enc.frame_sec == pytest.approx(10 / 128)
    assert enc.decode(enc.encode([])) == []


def test_encode_targets_gives_clip_labels_frame_labels_and_kinds():
    from sklearn_sed.labels import KIND_STRONG, KIND_WEAK, encode_targets

    classes = np.array(["Cat", "Dog"])
    Y_weak = np.array([[0, 1], [1, 0]], dtype=np.float32)
    y = encode_targets(
        Y_weak,
        [[(0.0, 5.0, "Dog")], None],
        classes=classes,
        n_frames=10,
        duration=10.0,
    )
    assert y["kind"].tolist() == [KIND_STRONG, KIND_WEAK]
    assert y["frames"].shape == (2, 10, 2)
    assert y["frames"][0, :5, 1].all()
    assert not y["frames"][0, 5:].any()
    assert not y["frames"][1].any()  # a weak-only clip has no frame labels
    np.testing.assert_array_equal(y["weak"], Y_weak)


def test_encode_targets_refuses_events_that_contradict_the_weak_label():
    from sklearn_sed.labels import encode_targets

    with pytest.raises(ValueError, match=r"y_strong\[0\] contradicts y_weak\[0\]"):
        encode_targets(
            np.array([[1, 0]], dtype=np.float32),
            [[(0.0, 5.0, "Dog")]],
            classes=np.array(["Cat", "Dog"]),
            n_frames=10,
            duration=10.0,
        )
