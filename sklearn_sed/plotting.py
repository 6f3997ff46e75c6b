"""One-glance figure of a clip: log-mel map, frame probabilities and events."""

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
):
    """Draw a clip's features, frame probabilities and events.

    Parameters
    ----------
    features : ndarray of shape (n_frames, n_mels)
        Log-mel map of the clip.
    frame_probs : ndarray of shape (n_frames_out, n_classes)
        Frame probabilities.
    events : list of (onset, offset, event_label)
        Detected events, in seconds.
    classes : array-like of shape (n_classes,)
        Class labels.
    duration : float
        Clip length in seconds.
    reference : list of (onset, offset, event_label), default=None
        Reference events, drawn under the detections when given.
    title : str, default=None
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure (three stacked panels sharing the time axis).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = [str(c) for c in classes]
    fig, axes = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.4]}
    )
    axes[0].imshow(
        np.asarray(features).T,
        origin="lower",
        aspect="auto",
        extent=(0, duration, 0, features.shape[1]),
        cmap="magma",
    )
    axes[0].set_ylabel("mel band")
    axes[0].set_title(title or "log-mel spectrogram")
    probs = np.asarray(frame_probs)
    axes[1].imshow(
        probs.T,
        origin="lower",
        aspect="auto",
        extent=(0, duration, -0.5, len(classes) - 0.5),
        vmin=0,
        vmax=1,
        cmap="viridis",
        interpolation="nearest",
    )
    axes[1].set_yticks(range(len(classes)), classes, fontsize=7)
    axes[1].set_title("frame probabilities")
    ax = axes[2]
    for row, (evs, color, offset) in enumerate(
        ((events, "tab:blue", 0.15), (reference or [], "tab:green", -0.15))
    ):
        for onset, offset_sec, label in evs:
            y = classes.index(str(label)) + offset
            ax.plot(
                [onset, offset_sec],
                [y, y],
                color=color,
                lw=5,
                solid_capstyle="butt",
                label=("detected", "reference")[row],
            )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_ylim(-0.7, len(classes) - 0.3)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_title("events")
    fig.tight_layout()
    return fig
