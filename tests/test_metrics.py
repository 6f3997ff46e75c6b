import numpy as np
import pytest
import sed_eval

from sklearn_sed.metrics.scoring import (
    event_based_f1,
    sed_eval_results,
    segment_based_f1,
)

REF = [
    [(0.5, 2.0, "Dog"), (3.0, 6.0, "Speech")],
    [(1.0, 9.0, "Blender")],
    [],
]
EST = [
    [(0.6, 2.1, "Dog"), (3.5, 5.0, "Speech"), (7.0, 8.0, "Dog")],
    [(1.1, 8.8, "Blender")],
    [(2.0, 3.0, "Speech")],
]
CLASSES = ["Blender", "Dog", "Speech"]


def _direct(metric):
    """sed_eval used directly, as in the DCASE2019 evaluation script."""
    if metric == "event":
        m = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=CLASSES,
            t_collar=0.2,
            percentage_of_length=0.2,
            empty_system_output_handling="zero_score",
        )
    else:
        m = sed_eval.sound_event.SegmentBasedMetrics(
            event_label_list=CLASSES, time_resolution=1.0
        )
    for i, (r, e) in enumerate(zip(REF, EST, strict=False)):
        ref = [
            dict(filename=f"f{i}", onset=a, offset=b, event_label=c) for a, b, c in r
        ]
        est = [
            dict(filename=f"f{i}", onset=a, offset=b, event_label=c) for a, b, c in e
        ]
        kwargs = {"evaluated_length_seconds": 10.0} if metric == "segment" else {}
        m.evaluate(ref, est, **kwargs)
    return m.results()


def test_event_based_f1_equals_sed_eval_directly():
    """Check macro and micro event F1 equal sed_eval's to the last digit."""
    res = _direct("event")
    assert (
        event_based_f1(REF, EST, classes=CLASSES)
        == (res["class_wise_average"]["f_measure"]["f_measure"])
    )
    assert (
        event_based_f1(REF, EST, classes=CLASSES, average="micro")
        == (res["overall"]["f_measure"]["f_measure"])
    )


def test_segment_based_f1_equals_sed_eval_directly():
    """Check segment F1 equals sed_eval's when every class is output."""
    res = _direct("segment")
    got = segment_based_f1(REF, EST, classes=CLASSES, duration=10.0)
    assert got == pytest.approx(
        res["class_wise_average"]["f_measure"]["f_measure"], abs=1e-15
    )


def test_segment_based_counts_silent_classes_as_zero():
    """Check a class never output counts as 0 (sed_eval would skip it)."""
    est = [[e for e in clip if e[2] != "Blender"] for clip in EST]
    res = sed_eval_results(REF, est, metric="segment", classes=CLASSES, duration=10.0)
    avg = res["class_wise_average"]["f_measure"]
    assert avg["f_measure"] < avg["f_measure_sed_eval"]
    np.testing.assert_allclose(
        avg["f_measure"] * 3, avg["f_measure_sed_eval"] * 2, rtol=1e-12
    )


def test_event_based_f1_perfect_and_empty():
    """Check 1 for a perfect system and 0 for an empty one."""
    assert event_based_f1(REF, REF, classes=CLASSES) == 1.0
    assert event_based_f1(REF, [[], [], []], classes=CLASSES) == 0.0


def test_metrics_length_mismatch_message():
    """Check unequal clip counts are reported."""
    with pytest.raises(ValueError, match="one entry per clip"):
        event_based_f1(REF, EST[:2])
