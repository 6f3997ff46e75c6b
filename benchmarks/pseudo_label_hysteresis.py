"""Precision and recall of hysteresis pseudo labels, from saved probabilities.

Applies the selection and frame labels of eqs. 4-5
(:func:`sklearn_sed.training.pseudo_labels.select_pseudo_labels`) at every threshold
``theta_i`` of the schedule, with ``low_ratio`` 1.0 (eq. 4) and below
(``PseudoLabelSED(pseudo_low_ratio=...)``), to the probabilities that
``reproduce_table1.py --save-frames`` saved for the validation soundscapes,
whose frame labels are known, and compares the positive frames of the
selected clips with the truth. The validation soundscapes stand in for the
weak clips: the question is how much of an event the frames above ``theta_i``
cover, and how much more a run above ``low_ratio * theta_i`` covers, without
training again:

    python benchmarks/pseudo_label_hysteresis.py --data /tmp/sed_bench \\
        --frames /tmp/sed_bench/frames-recipe-resnet-s*.npz
"""

import argparse
import os
import statistics
import sys

import numpy as np
from _common import require

from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.labels import events_to_frames
from sklearn_sed.training.pseudo_labels import select_pseudo_labels, threshold_schedule


def quality(frame_probs, clip_probs, truth, *, threshold, low_ratio):
    """``M_p``, frame precision and recall of the pseudo labels at one theta.

    Parameters
    ----------
    frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
    clip_probs : ndarray of shape (n_clips, n_classes)
    truth : ndarray of shape (n_clips, n_frames, n_classes), dtype bool
        True frame labels; the weak label is their max over time.
    threshold, low_ratio : float
        ``theta_i`` and the hysteresis ratio.

    Returns
    -------
    n_selected : int
    precision, recall : float
        Of the positive pseudo-labelled frames of the selected clips.
    """
    selected, pseudo = select_pseudo_labels(
        clip_probs,
        frame_probs,
        truth.any(axis=1),
        threshold=threshold,
        low_ratio=low_ratio,
    )
    pred, true = pseudo[selected] > 0.5, truth[selected]
    tp = float(np.sum(pred & true))
    return (
        int(selected.sum()),
        tp / max(float(pred.sum()), 1.0),
        tp / max(float(true.sum()), 1.0),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/sed_bench")
    p.add_argument("--frames", nargs="+", required=True)
    p.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1])
    p.add_argument("--delta", type=float, default=0.1)
    p.add_argument("--iterations", type=int, default=4)
    args = p.parse_args(argv)
    require(os.path.join(args.data, "metadata", "validation.tsv"), "benchmark data")
    sys.path.insert(0, os.path.dirname(__file__))
    from postprocessing_grid import labels

    _, y_valid = labels(args.data)
    classes = list(DESED_CLASSES)
    truth = None
    rows = {}
    for path in args.frames:
        f = np.load(path)
        frames = f["valid_frames"].astype(np.float32)
        clips = f["valid_clips"].astype(np.float32)
        if truth is None:
            truth = np.stack(
                [
                    events_to_frames(
                        ev, classes=classes, n_frames=frames.shape[1], duration=10.0
                    )
                    for ev in y_valid
                ]
            ).astype(bool)
        for i in range(args.iterations):
            theta = threshold_schedule(i, delta=args.delta)
            for ratio in args.ratios:
                rows.setdefault((theta, ratio), []).append(
                    quality(frames, clips, truth, threshold=theta, low_ratio=ratio)
                )
    print(
        f"Validation soundscapes standing in for the weak clips; mean over "
        f"{len(args.frames)} model(s): {', '.join(map(os.path.basename, args.frames))}."
    )
    print()
    print(
        "| theta_i | low ratio | clips selected (M_p) | frame precision | "
        "frame recall | frame F1 |"
    )
    print("|---|---|---|---|---|---|")
    for (theta, ratio), qs in sorted(
        rows.items(), key=lambda kv: (-kv[0][0], -kv[0][1])
    ):
        m, prec, rec = (statistics.mean(v) for v in zip(*qs, strict=True))
        f1 = 2 * prec * rec / max(prec + rec, 1e-12)
        label = "1.0 (eq. 4)" if ratio == 1.0 else f"{ratio}"
        print(
            f"| {theta:.2f} | {label} | {m:.0f} | {100 * prec:.1f} % | "
            f"{100 * rec:.1f} % | {100 * f1:.1f} % |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
