"""One-glance figures: a recording's detections, and a fit's validation.

- :func:`plot_detection`: log-mel map, frame probabilities and events of a
  recording.
- :func:`plot_training`: per-class F1 of the kept epoch and the validation
  curve of each epoch (``sklearn-sed train`` writes it beside the model).

Each figure is a :class:`matplotlib.figure.Figure` built without pyplot, so
drawing it never changes the caller's matplotlib backend (a notebook keeps
its inline backend; a script saves it with ``fig.savefig``).
"""

import numpy as np

__all__ = ["plot_detection", "plot_training"]


def plot_detection(
    features,
    frame_probs,
    events,
    *,
    classes,
    duration,
    reference=None,
    title=None,
    threshold=None,
    sr=None,
    hop_length=None,
    fmin=0.0,
    fmax=None,
):
    """Draw a recording's features, frame probabilities and events.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_mels)
        Log-mel map (dB, or min-max scaled features).
    frame_probs : ndarray of shape (n_frames_out, n_classes)
        Frame probabilities.
    events : list of (onset, offset, event_label)
        Detected events, in seconds.
    classes : array-like of shape (n_classes,)
        Class labels.
    duration : float
        Seconds spanned by ``features`` and ``frame_probs`` (the clip, or the
        whole recording).
    reference : list of (onset, offset, event_label), default=None
        Reference events, drawn under the detections when given.
    title : str, default=None
        Figure title.
    threshold : float or array-like of shape (n_classes,), default=None
        Decision threshold(s): marked on the colour bar of the probability
        panel, and the frames at or above them are outlined.
    sr, hop_length : int, default=None
        Sample rate and hop of the features; with ``fmax`` they label the
        spectrogram's frequency axis in Hz (``librosa.display.specshow``).
        Without them the axis shows mel-band indices.
    fmin, fmax : float, default=0.0, None
        Frequency range of the mel filters in Hz.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Three stacked panels sharing the time axis, each with its colour bar
        or legend outside the data area.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    classes = [str(c) for c in classes]
    features = np.asarray(features)
    probs = np.asarray(frame_probs)
    fig = Figure(figsize=(12, 8.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 2, 1.6]})
    if sr is not None and hop_length is not None and fmax is not None:
        import librosa.display

        image = librosa.display.specshow(
            features.T,
            sr=sr,
            hop_length=hop_length,
            x_axis="time",
            y_axis="mel",
            fmin=fmin,
            fmax=fmax,
            cmap="magma",
            ax=axes[0],
        )
        axes[0].set_ylabel("frequency (Hz)")
    else:
        image = axes[0].imshow(
            features.T,
            origin="lower",
            aspect="auto",
            extent=(0, duration, 0, features.shape[1]),
            cmap="magma",
        )
        axes[0].set_ylabel("mel band")
    fig.colorbar(image, ax=axes[0], label="level", pad=0.01)
    axes[0].set_title(title or "log-mel spectrogram")
    panel = axes[1].imshow(
        probs.T,
        origin="lower",
        aspect="auto",
        extent=(0, duration, -0.5, len(classes) - 0.5),
        vmin=0,
        vmax=1,
        cmap="viridis",
        interpolation="nearest",
    )
    bar = fig.colorbar(panel, ax=axes[1], label="probability", pad=0.01)
    if threshold is not None:
        thr = np.broadcast_to(np.asarray(threshold, dtype=float), (len(classes),))
        for value in np.unique(thr):
            bar.ax.axhline(value, color="red", lw=2.5)
        bar.set_label("probability (red: threshold)")
        above = (probs >= thr).T.astype(float)
        axes[1].contour(
            np.linspace(0, duration, probs.shape[0]),
            np.arange(len(classes)),
            above,
            levels=[0.5],
            colors="white",
            linewidths=0.8,
        )
        # Decoding median-filters the probabilities (and may apply
        # hysteresis), so an outlined stretch need not become an event.
        axes[1].set_title(
            "frame probabilities (white outline: raw frames at or above "
            "threshold; events are decoded after the median filter and "
            "hysteresis, so short outlined stretches may yield none)",
            fontsize=9,
        )
    else:
        axes[1].set_title("frame probabilities")
    axes[1].set_yticks(range(len(classes)), classes, fontsize=7)
    ax = axes[2]
    rows = ((events, "tab:blue", 0.17), (reference or [], "tab:green", -0.17))
    for evs, color, shift in rows:
        for onset, offset_sec, label in evs:
            y = classes.index(str(label)) + shift
            ax.plot(
                [onset, offset_sec], [y, y], color=color, lw=5, solid_capstyle="butt"
            )
    handles = [Line2D([], [], color="tab:blue", lw=5, label="detected")]
    if reference is not None:
        handles.append(Line2D([], [], color="tab:green", lw=5, label="reference"))
    # Outside the axes, so that it never hides an event.
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_ylim(-0.7, len(classes) - 0.3)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_title("events")
    for a in axes:
        a.label_outer()
    return fig


def plot_training(history, class_f1, *, classes, best_epoch=None, title=None):
    """Draw a fit's validation: F1 per class, and F1 and loss per epoch.

    Parameters
    ----------
    history : sequence of dict
        One row per epoch, as ``sed.net_.history`` (or
        ``sklearn_sed.training.net.history_to_rows``) holds them: the
        keys ``valid_event_f1`` (in [0, 1]), ``train_loss`` and ``stage``
        are drawn where present.
    class_f1 : array-like of shape (n_classes,)
        Event-based F1 of each class, in [0, 1] (NaN: a class without
        reference or output events, drawn as "n/a").
    classes : array-like of shape (n_classes,)
        Class labels.
    best_epoch : int, default=None
        The kept epoch (1-based), marked on the curve.
    title : str, default=None
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two panels: horizontal bars of the per-class F1 (%) with their
        macro mean, and the validation F1 (%) and training loss of every
        epoch, stage 2 shaded.
    """
    from matplotlib.figure import Figure

    classes = [str(c) for c in classes]
    f1 = np.asarray(class_f1, dtype=float)
    if f1.shape != (len(classes),):
        raise ValueError(
            f"class_f1 must hold one F1 per class ({len(classes)}); got shape "
            f"{f1.shape}."
        )
    rows = list(history)
    fig = Figure(figsize=(12, 0.9 + 0.32 * max(len(classes), 8)), layout="constrained")
    bars, curve = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    y = np.arange(len(classes))[::-1]
    shown = np.nan_to_num(f1) * 100
    bars.barh(y, shown, color="tab:blue")
    for yi, value, raw in zip(y, shown, f1, strict=True):
        text = "n/a" if np.isnan(raw) else f"{value:.1f}"
        bars.text(value + 1, yi, text, va="center", fontsize=8)
    if np.any(~np.isnan(f1)):
        mean = 100 * np.nanmean(f1)
        bars.axvline(mean, color="black", ls="--", lw=1)
        bars.set_title(f"event-based F1 per class (macro mean {mean:.1f} %)")
    else:
        bars.set_title("event-based F1 per class")
    bars.set_yticks(y, classes, fontsize=8)
    bars.set_xlim(0, 110)
    bars.set_xlabel("F1 (%)")
    epochs = np.arange(1, len(rows) + 1)
    valid = [r.get("valid_event_f1") for r in rows]
    if rows and all(v is not None for v in valid):
        curve.plot(epochs, 100 * np.asarray(valid, float), "o-", label="validation F1")
    curve.set_xlabel("epoch")
    curve.set_ylabel("validation event F1 (%)")
    loss = [r.get("train_loss") for r in rows]
    if rows and all(v is not None for v in loss):
        twin = curve.twinx()
        twin.plot(epochs, np.asarray(loss, float), color="tab:gray", lw=1)
        twin.set_ylabel("training loss (grey)")
    stage2 = [e for e, r in zip(epochs, rows, strict=True) if r.get("stage") == 2]
    if stage2:
        curve.axvspan(stage2[0] - 0.5, stage2[-1] + 0.5, color="tab:orange", alpha=0.12)
        axis = curve.get_xaxis_transform()
        curve.text(stage2[0] - 0.4, 0.98, "stage 2", transform=axis, va="top")
    if best_epoch is not None:
        curve.axvline(
            best_epoch, color="tab:red", ls=":", label=f"kept: epoch {best_epoch}"
        )
    if curve.get_legend_handles_labels()[0]:
        curve.legend(loc="lower right", fontsize=8)
    curve.set_title("validation after each epoch")
    if title:
        fig.suptitle(title)
    return fig
