"""One-glance figure of a recording: log-mel map, frame probabilities, events.

The figure is a :class:`matplotlib.figure.Figure` built without pyplot, so
drawing it never changes the caller's matplotlib backend (a notebook keeps
its inline backend; a script saves it with ``fig.savefig``).
"""

import numpy as np

__all__ = ["plot_detection"]


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
